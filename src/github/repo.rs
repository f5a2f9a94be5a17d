//! Which GitHub repository a Buildkite pipeline builds.
//!
//! Buildkite describes a pipeline's source twice: `pipeline.provider` (`id` is `github` or
//! `github_enterprise` for GitHub-backed pipelines, with `settings.repository` =
//! `owner/repo`) and `pipeline.repository`, the git URL the agent clones. The provider
//! setting is the more precise of the two; the URL is the fallback and the only source for
//! pipelines set up as plain git (Buildkite docs: "Pipelines API", `provider` object).
//!
//! A repository name ends up in API paths (`/repos/{owner}/{repo}/check-runs`), so it is
//! parsed into [`RepoFullName`] here, at the edge, and nothing else builds such a path.

use std::fmt;

use url::Url;

use crate::domain::PipelineSource;
pub use crate::domain::{RepoFullName, RepoNameError};

/// The web host of the GitHub kitefix posts to (`github.com`, or an Enterprise host), which
/// a pipeline's git URL must name for the pipeline to count as "on GitHub".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubHost(String);

impl GitHubHost {
    /// `github.com`.
    pub fn github_com() -> Self {
        Self("github.com".to_owned())
    }

    /// A web host named in configuration (`github.web_host`).
    pub(crate) fn new(host: &str) -> Self {
        Self(host.trim().to_ascii_lowercase())
    }

    /// The web host that goes with an API base URL: `https://api.github.com` → `github.com`,
    /// `https://api.acme.ghe.com` → `acme.ghe.com` (GitHub Enterprise Cloud with data
    /// residency), `https://ghe.example.com/api/v3` → `ghe.example.com` (GitHub Enterprise
    /// Server serves its API under the web host). `None` when the URL has no host.
    pub(crate) fn from_api_url(api_url: &Url) -> Option<Self> {
        let host = api_url.host_str()?.to_ascii_lowercase();
        let web = host.strip_prefix("api.").map(str::to_owned).unwrap_or(host);
        Some(Self(web))
    }

    /// The host name, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `host` (from a git URL) is this GitHub. github.com is also reachable as
    /// `www.github.com` and, for SSH over port 443, `ssh.github.com` (GitHub docs: "Using
    /// SSH over the HTTPS port").
    fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        host == self.0
            || (self.0 == "github.com"
                && matches!(host.as_str(), "www.github.com" | "ssh.github.com"))
    }
}

impl fmt::Display for GitHubHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a pipeline is not reported on GitHub. Recorded as the reason a build was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotOnGitHub {
    /// Neither a provider setting nor a git URL names a repository.
    #[error("the pipeline names no repository")]
    NoRepository,
    /// The git URL points at another host (GitLab, Bitbucket, another GitHub).
    #[error("the repository is on `{host}`, not on {expected}")]
    OtherHost {
        /// The host found in the URL.
        host: String,
        /// The configured GitHub host.
        expected: String,
    },
    /// The git URL is not of a shape kitefix knows (local path, unknown scheme).
    #[error("`{url}` is not a GitHub repository URL kitefix understands")]
    UnrecognisedUrl {
        /// The URL with any credentials removed.
        url: String,
    },
    /// The URL or setting named a repository whose name is not valid.
    #[error(transparent)]
    InvalidName(#[from] RepoNameError),
}

/// The GitHub repository a pipeline builds, or why it has none on `host`.
///
/// The provider's `owner/repo` wins when the provider is GitHub, unless the git URL shows
/// the code lives on a different host than the one configured: then posting by name could
/// reach a same-named repository on the wrong GitHub, so the pipeline is refused.
pub fn repo_from_pipeline(
    source: &PipelineSource,
    host: &GitHubHost,
) -> Result<RepoFullName, NotOnGitHub> {
    let from_url = source
        .repository_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .map(|u| parse_git_url(u, host));
    let provider_is_github =
        matches!(source.provider.as_deref(), Some("github") | Some("github_enterprise"));
    if provider_is_github
        && let Some(Ok(repo)) =
            source.provider_repository.as_deref().map(str::trim).map(RepoFullName::parse)
    {
        return match from_url {
            Some(Err(other @ NotOnGitHub::OtherHost { .. })) => Err(other),
            _ => Ok(repo),
        };
    }
    from_url.unwrap_or(Err(NotOnGitHub::NoRepository))
}

/// Parses a git remote URL naming a repository on `host`: `git@github.com:o/r.git`,
/// `https://github.com/o/r(.git)`, `ssh://git@host[:port]/o/r.git`, `git://host/o/r.git`.
pub(crate) fn parse_git_url(url: &str, host: &GitHubHost) -> Result<RepoFullName, NotOnGitHub> {
    let url = url.trim();
    let unrecognised = || NotOnGitHub::UnrecognisedUrl { url: without_credentials(url) };
    let (found_host, path) = if url.contains("://") {
        let parsed = Url::parse(url).map_err(|_| unrecognised())?;
        if !matches!(parsed.scheme(), "https" | "http" | "ssh" | "git" | "git+ssh" | "ssh+git") {
            return Err(unrecognised());
        }
        let found_host = parsed.host_str().ok_or_else(unrecognised)?.to_owned();
        (found_host, parsed.path().to_owned())
    } else {
        // scp-like syntax `[user@]host:path`: git treats it as such only when no `/` comes
        // before the first `:` (git docs: "GIT URLS").
        let (authority, path) = url.split_once(':').ok_or_else(unrecognised)?;
        if authority.contains('/') || authority.is_empty() {
            return Err(unrecognised());
        }
        let found_host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        (found_host.to_owned(), path.to_owned())
    };
    if !host.matches(&found_host) {
        return Err(NotOnGitHub::OtherHost {
            host: found_host.to_ascii_lowercase(),
            expected: host.to_string(),
        });
    }
    let path = path.trim_matches('/');
    let path = strip_suffix_ignore_case(path, ".git").unwrap_or(path);
    let mut segments = path.split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some(owner), Some(name), None) => Ok(RepoFullName::parse(&format!("{owner}/{name}"))?),
        _ => Err(unrecognised()),
    }
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(cut) && s[cut..].eq_ignore_ascii_case(suffix)).then(|| &s[..cut])
}

/// The URL without `user:password@`, so a token embedded in a clone URL never reaches a
/// log line or a stored skip reason.
fn without_credentials(url: &str) -> String {
    let shortened: String = url.chars().take(300).collect();
    match Url::parse(&shortened) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            // Setting these only fails for URLs that cannot have credentials at all.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(_) => shortened,
        // Not a URL: keep only what follows the last `@` in the part before any path.
        Err(_) => match shortened.split_once('@') {
            Some((user, rest)) if user.contains(':') => format!("***@{rest}"),
            _ => shortened,
        },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ghe() -> GitHubHost {
        GitHubHost::from_api_url(&Url::parse("https://ghe.example.com/api/v3").unwrap()).unwrap()
    }

    #[test]
    fn full_names_split_into_owner_and_name() {
        let repo = RepoFullName::parse("acme-inc/web.app_2").unwrap();
        assert_eq!((repo.owner(), repo.name()), ("acme-inc", "web.app_2"));
        assert_eq!(repo.to_string(), "acme-inc/web.app_2");
    }

    #[test]
    fn full_names_refuse_what_could_change_an_api_path() {
        for bad in [
            "",
            "acme",
            "acme/",
            "/web",
            "acme/web/extra",
            "acme/..",
            "acme/.",
            "acme/web?x=1",
            "acme/web#x",
            "acme/we b",
            "ac%2fme/web",
            "-acme/web",
            "acme/web.git",
            "acmé/web",
        ] {
            assert!(RepoFullName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn api_urls_map_to_web_hosts() {
        let host = |u: &str| GitHubHost::from_api_url(&Url::parse(u).unwrap()).unwrap();
        assert_eq!(host("https://api.github.com").as_str(), "github.com");
        assert_eq!(host("https://api.acme.ghe.com/").as_str(), "acme.ghe.com");
        assert_eq!(host("https://GHE.example.com/api/v3").as_str(), "ghe.example.com");
    }

    #[test]
    fn git_urls_of_every_common_shape_name_the_repository() {
        let gh = GitHubHost::github_com();
        for url in [
            "git@github.com:acme/web.git",
            "git@github.com:acme/web",
            "https://github.com/acme/web.git",
            "https://github.com/acme/web",
            "https://github.com/acme/web/",
            "https://x-access-token:secret@github.com/acme/web.git",
            "ssh://git@github.com/acme/web.git",
            "ssh://git@ssh.github.com:443/acme/web.git",
            "git://github.com/acme/web.git",
            "  https://GitHub.com/acme/web.GIT\n",
        ] {
            assert_eq!(parse_git_url(url, &gh).unwrap().as_str(), "acme/web", "{url}");
        }
    }

    #[test]
    fn enterprise_urls_need_the_configured_host() {
        assert_eq!(
            parse_git_url("git@ghe.example.com:team/svc.git", &ghe()).unwrap().as_str(),
            "team/svc"
        );
        assert_eq!(
            parse_git_url("ssh://git@ghe.example.com:2222/team/svc.git", &ghe()).unwrap().as_str(),
            "team/svc"
        );
        let err = parse_git_url("git@github.com:team/svc.git", &ghe()).unwrap_err();
        assert_eq!(
            err,
            NotOnGitHub::OtherHost {
                host: "github.com".into(),
                expected: "ghe.example.com".into()
            }
        );
    }

    #[test]
    fn other_hosts_and_shapes_are_not_on_github() {
        let gh = GitHubHost::github_com();
        assert!(matches!(
            parse_git_url("git@gitlab.com:acme/web.git", &gh),
            Err(NotOnGitHub::OtherHost { host, .. }) if host == "gitlab.com"
        ));
        for url in [
            "/srv/git/web.git",
            "file:///srv/git/web.git",
            "https://github.com/acme",
            "https://github.com/acme/web/tree/main",
        ] {
            assert!(
                matches!(parse_git_url(url, &gh), Err(NotOnGitHub::UnrecognisedUrl { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn credentials_never_reach_the_reason() {
        let err =
            parse_git_url("https://user:hunter2@github.com/only-owner", &GitHubHost::github_com())
                .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = parse_git_url("user:hunter2@host/x", &GitHubHost::github_com()).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn provider_setting_wins_over_the_url() {
        let source = PipelineSource {
            provider: Some("github".into()),
            provider_repository: Some("acme/web".into()),
            repository_url: Some("git@github.com:acme/old-name.git".into()),
        };
        let repo = repo_from_pipeline(&source, &GitHubHost::github_com()).unwrap();
        assert_eq!(repo.as_str(), "acme/web");
    }

    #[test]
    fn provider_setting_on_another_host_is_refused() {
        let source = PipelineSource {
            provider: Some("github".into()),
            provider_repository: Some("acme/web".into()),
            repository_url: Some("git@github.com:acme/web.git".into()),
        };
        assert!(matches!(repo_from_pipeline(&source, &ghe()), Err(NotOnGitHub::OtherHost { .. })));
    }

    #[test]
    fn url_is_used_when_the_provider_is_not_github() {
        let source = PipelineSource {
            provider: Some("git".into()),
            provider_repository: None,
            repository_url: Some("https://github.com/acme/web.git".into()),
        };
        assert_eq!(
            repo_from_pipeline(&source, &GitHubHost::github_com()).unwrap().as_str(),
            "acme/web"
        );
        let gitlab = PipelineSource {
            provider: Some("gitlab".into()),
            provider_repository: Some("acme/web".into()),
            repository_url: Some("git@gitlab.com:acme/web.git".into()),
        };
        assert!(matches!(
            repo_from_pipeline(&gitlab, &GitHubHost::github_com()),
            Err(NotOnGitHub::OtherHost { .. })
        ));
        assert_eq!(
            repo_from_pipeline(&PipelineSource::default(), &GitHubHost::github_com()),
            Err(NotOnGitHub::NoRepository)
        );
    }

    fn owner() -> impl Strategy<Value = String> {
        "[A-Za-z0-9][A-Za-z0-9_-]{0,38}"
    }

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-][A-Za-z0-9._-]{0,60}"
            .prop_filter("not .git", |n| !n.to_ascii_lowercase().ends_with(".git"))
    }

    proptest! {
        #[test]
        fn every_url_shape_round_trips(owner in owner(), name in name()) {
            let gh = GitHubHost::github_com();
            let expected = format!("{owner}/{name}");
            for url in [
                format!("git@github.com:{owner}/{name}.git"),
                format!("https://github.com/{owner}/{name}"),
                format!("https://github.com/{owner}/{name}.git"),
                format!("ssh://git@github.com/{owner}/{name}.git"),
            ] {
                let repo = parse_git_url(&url, &gh).unwrap();
                prop_assert_eq!(repo.as_str(), expected.as_str());
            }
        }

        #[test]
        fn parsed_names_are_path_safe(s in "\\PC{0,60}") {
            if let Ok(repo) = RepoFullName::parse(&s) {
                prop_assert_eq!(repo.as_str().matches('/').count(), 1);
                prop_assert!(!repo.as_str().contains(['?', '#', '%', ' ', '\\']));
                prop_assert!(repo.name() != ".." && repo.name() != ".");
                prop_assert_eq!(RepoFullName::parse(repo.as_str()), Ok(repo.clone()));
            }
        }

        #[test]
        fn arbitrary_urls_never_panic(s in "\\PC{0,80}") {
            let _ = parse_git_url(&s, &GitHubHost::github_com());
        }
    }
}
