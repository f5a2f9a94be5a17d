//! A size in bytes that config files can write as `5242880` or `"5 MiB"`.

use std::fmt;

use serde::{Deserialize, Deserializer, de};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(u64);

impl ByteSize {
    pub const fn bytes(n: u64) -> Self {
        Self(n)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// Parses `123`, `123B`, `64 KiB`, `5 MiB`, `1 GiB` (and the decimal `KB`/`MB`/`GB`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().map_err(|_| format!("`{s}` is not a size like `5 MiB`"))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => return Err(format!("unknown unit `{other}` (use B, KiB, MiB or GiB)")),
        };
        n.checked_mul(factor).map(Self).ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes or a size like \"5 MiB\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }

        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_binary_units() {
        assert_eq!(ByteSize::parse("5242880").unwrap().get(), 5 << 20);
        assert_eq!(ByteSize::parse("5 MiB").unwrap().get(), 5 << 20);
        assert_eq!(ByteSize::parse("64KiB").unwrap().get(), 64 << 10);
        assert_eq!(ByteSize::parse("2 MB").unwrap().get(), 2_000_000);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(ByteSize::parse("five").is_err());
        assert!(ByteSize::parse("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(ByteSize::parse("99999999999999999999 GiB").is_err());
    }
}
