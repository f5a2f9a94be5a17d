//! A synthetic Buildkite job log with a realistic mix of lines, for benchmarks: agent
//! headers and timestamps (`ESC _bk;t=… BEL`), CRLF, colours, build and test chatter,
//! warnings and harmless "error" words, progress bars, a few long lines, and a real
//! failure at the end. Deterministic: the same size gives the same bytes.

/// Appends log text to `out` until it holds at least `size` bytes; the failure lines
/// come last.
pub fn synth_log(size: usize, out: &mut Vec<u8>) {
    let mut rng = Lcg(0x2545_f491_4f6c_dd1d);
    let mut t: u64 = 1_738_747_164_589;
    let mut line = String::with_capacity(512);
    out.extend_from_slice(b"\x1b_bk;t=1738747164589\x07~~~ Preparing working directory\r\n");
    out.extend_from_slice(b"\x1b_bk;t=1738747164590\x07\x1b[90m$\x1b[0m cd /var/lib/buildkite-agent/builds/agent-1/org/app\r\n");
    out.extend_from_slice(b"\x1b_bk;t=1738747164591\x07+++ :rust: Build and test\r\n");
    let mut n = 0u64;
    while out.len() < size {
        n += 1;
        t += rng.below(40);
        line.clear();
        let r = rng.below(1000);
        let i = rng.below(5000);
        match r {
            0..=179 => line.push_str(&format!("   \x1b[32mCompiling\x1b[0m crate-{i} v0.{}.{}", i % 17, i % 7)),
            180..=379 => line.push_str(&format!("test module_{}::tests::case_{i} ... \x1b[32mok\x1b[0m", i % 97)),
            380..=479 => line.push_str(&format!("tests/test_mod_{}.py::TestThing::test_{i} PASSED [ {}%]", i % 50, i % 100)),
            480..=559 => line.push_str(&format!("=== RUN   TestHandler{i}\r\n--- PASS: TestHandler{i} (0.0{}s)", i % 10)),
            560..=619 => line.push_str(&format!("#{} [{}/9] RUN apt-get install -y libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*", i % 40, i % 9 + 1)),
            620..=669 => line.push_str(&format!("Get:{i} http://archive.ubuntu.com/ubuntu jammy/main amd64 libfoo{i} amd64 1.{i}-1 [{} kB]", i % 900)),
            670..=709 => line.push_str(&format!("\x1b[33mwarning\x1b[0m: unused variable: `value_{i}`\n  --> src/module_{}.rs:{}:9", i % 30, i % 400)),
            710..=739 => line.push_str(&format!("{{\"level\":\"info\",\"ts\":{t},\"msg\":\"request handled\",\"status\":200,\"errors\":0,\"path\":\"/api/v1/items/{i}\"}}")),
            740..=769 => line.push_str(&format!("Downloading {}%\r Downloading {}%\r Downloaded package-{i}.tar.gz", i % 50, 50 + i % 50)),
            770..=789 => line.push_str(&format!("INFO retrying connection to cache (attempt {} of 5), previous error: none", i % 5)),
            790..=809 => line.push_str(&format!("  PASS  src/components/Widget{i}.test.tsx ({}.{} s)", i % 9, i % 10)),
            810..=829 => line.push_str(&format!("[INFO] Tests run: {}, Failures: 0, Errors: 0, Skipped: 0, Time elapsed: 0.{} s - in com.example.Service{i}Test", i % 40 + 1, i % 1000)),
            830..=839 => {
                line.push_str("var a=");
                for k in 0..(200 + i % 800) {
                    line.push_str(&format!("{k},"));
                }
            }
            840..=859 => line.push_str(&format!("ok  \tgithub.com/example/app/pkg/mod{}\t0.{}s", i % 60, i % 900)),
            860..=879 => line.push_str(&format!("npm WARN deprecated package-{i}@1.0.{}: this version is no longer supported", i % 9)),
            880..=899 => line.push_str(&format!("   Finished `test` profile [unoptimized + debuginfo] target(s) in {}.{}s", i % 90, i % 100)),
            900..=919 => line.push_str(&format!("test result: ok. {} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.{}s", i % 300, i % 100)),
            920..=939 => line.push_str(&format!("{}:{}: DeprecationWarning: the error handling helper is deprecated", "lib/helpers.py", i % 300)),
            940..=959 => line.push_str(&format!("Step {}/{} : COPY . /app", i % 20, 20)),
            960..=979 => line.push_str(&format!("   Validating checksum for artifact-{i}.zip... done ({} bytes)", i * 131)),
            _ => line.push_str(""),
        }
        out.extend_from_slice(format!("\x1b_bk;t={t}\x07").as_bytes());
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(if n.is_multiple_of(3) { b"\n" } else { b"\r\n" });
    }
    let tail = [
        "error[E0308]: mismatched types",
        "  --> src/handlers/orders.rs:42:18",
        "   |",
        "42 |     let total: u32 = order.total();",
        "   |                ---   ^^^^^^^^^^^^^ expected `u32`, found `u64`",
        "   |                |",
        "   |                expected due to this",
        "",
        "error: could not compile `app` (lib) due to 1 previous error",
        "\x1b[31m🚨 Error: The command exited with status 101\x1b[0m",
        "^^^ +++",
        "~~~ Running global pre-exit hook",
    ];
    for l in tail {
        t += 1;
        out.extend_from_slice(format!("\x1b_bk;t={t}\x07{l}\r\n").as_bytes());
    }
}

/// A tiny deterministic generator: benchmarks must not depend on a random seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 =
            self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}
