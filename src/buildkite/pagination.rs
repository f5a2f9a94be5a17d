//! `Link` header pagination (docs/buildkite.md#pagination): `<…&page=3>; rel="next", …`.
//!
//! kitefix never requests a URL it was handed: from the `next` link it takes only the page
//! number, after checking that the link names the configured API host, and builds the
//! next request itself.

use reqwest::header::{HeaderMap, LINK};
use url::Url;

use super::error::BuildkiteError;

/// The page number of the `rel="next"` link, or `None` on the last page.
///
/// Fails with [`BuildkiteError::UntrustedLink`] if the link points at another origin
/// (scheme, host or port) than `base`.
pub(crate) fn next_page(headers: &HeaderMap, base: &Url) -> Result<Option<u32>, BuildkiteError> {
    let Some(next) =
        headers.get_all(LINK).iter().filter_map(|v| v.to_str().ok()).find_map(next_link)
    else {
        return Ok(None);
    };
    let Ok(link) = Url::parse(next) else {
        tracing::warn!("ignoring an unparseable next-page link");
        return Ok(None);
    };
    let same_origin = link.scheme() == base.scheme()
        && link.host_str() == base.host_str()
        && link.port_or_known_default() == base.port_or_known_default();
    if !same_origin {
        return Err(BuildkiteError::UntrustedLink {
            host: link.host_str().unwrap_or("(none)").to_owned(),
        });
    }
    Ok(link.query_pairs().find(|(key, _)| key == "page").and_then(|(_, v)| v.parse().ok()))
}

/// The target of the `rel="next"` entry of one `Link` header value.
fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|entry| {
        let (target, params) = entry.trim().split_once(';')?;
        let is_next = params.split(';').any(|param| {
            let param = param.trim();
            param.eq_ignore_ascii_case("rel=\"next\"") || param.eq_ignore_ascii_case("rel=next")
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then_some(target)
    })
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn link(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(LINK, HeaderValue::from_str(value).expect("value"));
        headers
    }

    fn base() -> Url {
        Url::parse("https://api.buildkite.com").expect("url")
    }

    #[test]
    fn finds_the_next_page_among_other_links() {
        let headers = link(
            "<https://api.buildkite.com/v2/organizations/acme/builds?page=1&per_page=100>; rel=\"first\", \
             <https://api.buildkite.com/v2/organizations/acme/builds?page=3&per_page=100>; rel=\"next\", \
             <https://api.buildkite.com/v2/organizations/acme/builds?page=9&per_page=100>; rel=\"last\"",
        );
        assert_eq!(next_page(&headers, &base()).expect("trusted"), Some(3));
    }

    #[test]
    fn last_page_has_no_next() {
        let headers = link("<https://api.buildkite.com/v2/x?page=1>; rel=\"first\"");
        assert_eq!(next_page(&headers, &base()).expect("trusted"), None);
        assert_eq!(next_page(&HeaderMap::new(), &base()).expect("trusted"), None);
    }

    #[test]
    fn a_link_to_another_host_or_port_is_refused() {
        for other in [
            "https://evil.example/v2/x?page=2",
            "http://api.buildkite.com/v2/x?page=2",
            "https://api.buildkite.com:8443/v2/x?page=2",
            "https://api.buildkite.com.evil.example/v2/x?page=2",
        ] {
            let headers = link(&format!("<{other}>; rel=\"next\""));
            let err = next_page(&headers, &base()).expect_err(other);
            assert!(matches!(err, BuildkiteError::UntrustedLink { .. }), "{other}: {err}");
        }
    }
}
