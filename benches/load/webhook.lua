-- wrk script: POSTs failed build.finished webhooks, each for a different build so none
-- is deduplicated, in token mode (X-Buildkite-Token; wrk's Lua has no HMAC — the cost
-- of signature verification is measured on its own in benches/webhook.rs).
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

function init(args)
  counter = 0
  token = os.getenv("BENCH_WEBHOOK_TOKEN") or "bench-webhook-token-0123456789"
  template = '{"event":"build.finished","build":{"id":"%s","url":"https://api.buildkite.com/v2/organizations/acme/pipelines/web-app/builds/%d","number":%d,"state":"failed","blocked":false,"commit":"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678","branch":"main","finished_at":"2026-11-25T10:00:00.000Z","pull_request":null,"meta_data":{}},"pipeline":{"slug":"web-app","repository":"git@github.com:acme/web-app.git","provider":{"id":"github","settings":{"repository":"acme/web-app"}}},"sender":{"id":"x","name":"Buildkite"}}'
  run = math.random(0, 0xffffff)
end

function request()
  counter = counter + 1
  local id = string.format("%08x-%04x-4000-8000-%012x", thread_id, run % 0xffff, counter)
  local body = string.format(template, id, counter, counter)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Buildkite-Event"] = "build.finished",
    ["X-Buildkite-Token"] = token,
  }, body)
end

statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
