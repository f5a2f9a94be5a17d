//! The admin page as HTML: pure functions from view models to a string, so what the page
//! says can be tested without a server. Every value from outside (org slugs, job names,
//! titles, reasons) goes through [`escape`]; nothing here writes raw user text.
//!
//! Accessibility (WCAG 2.2): one `h1`, landmarks, a label for every input, tables with a
//! caption and header cells with `scope`, outcome messages in a live region
//! (`role="status"` / `role="alert"`) placed before the form so screen readers announce
//! them, and status shown as text, never by colour alone.

use std::fmt::Write as _;

/// A connected Buildkite organisation, as the page shows it.
#[derive(Debug, Clone)]
pub struct IntegrationView {
    pub id: String,
    pub org: String,
    /// Machine status (`connected`, `missing_scopes`, `token_rejected`, …).
    pub status: String,
    /// Why the integration is not usable, when it is not.
    pub reason: Option<String>,
    /// The API token's last 4 characters.
    pub token_last4: String,
    /// When the last webhook arrived for it (RFC 3339), if ever.
    pub last_webhook: Option<String>,
    pub webhook_path: String,
}

/// One recent build in the analyses table.
#[derive(Debug, Clone)]
pub struct AnalysisView {
    /// `org/pipeline #number`.
    pub build: String,
    pub build_url: String,
    pub state: String,
    pub category: Option<String>,
    pub title: Option<String>,
    pub reason: Option<String>,
    pub check_run_url: Option<String>,
    pub updated: String,
}

/// What the last form submission did.
#[derive(Debug, Clone)]
pub enum Notice {
    /// Connected: the webhook token is shown this once.
    Connected {
        org: String,
        webhook_url: String,
        webhook_token: String,
    },
    Removed {
        org: String,
    },
    /// A refusal, with the user-facing message (missing scopes, token rejected…).
    Error {
        message: String,
    },
}

/// What the connect form should show again after a refusal (never the token).
#[derive(Debug, Clone, Default)]
pub struct FormState {
    pub org: String,
}

pub struct Page<'a> {
    pub integrations: &'a [IntegrationView],
    pub analyses: &'a [AnalysisView],
    pub notice: Option<&'a Notice>,
    pub form: &'a FormState,
    /// False when this process runs without the integrations store (a worker-only set-up).
    pub dry_run: bool,
}

/// HTML-escapes text for element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Only `http(s)` links are rendered as links: a `javascript:` URL from a payload must
/// never become clickable.
fn safe_href(url: &str) -> Option<String> {
    let lower = url.trim_start().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then(|| escape(url))
}

fn status_label(status: &str) -> &'static str {
    match status {
        "connected" => "Connected",
        "missing_scopes" => "Missing scopes",
        "token_rejected" => "Token rejected",
        "unreachable" => "Buildkite unreachable",
        "removed" => "Removed",
        _ => "Unknown",
    }
}

pub fn page(p: &Page<'_>) -> String {
    let mut h = String::with_capacity(8 << 10);
    h.push_str(concat!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<title>kitefix admin</title>\n<link rel=\"stylesheet\" href=\"/admin.css\">\n",
        "</head>\n<body>\n<header><h1>kitefix</h1>",
        "<p>Explains failed Buildkite builds on GitHub.</p></header>\n<main>\n"
    ));
    if p.dry_run {
        h.push_str(
            "<p class=\"banner\">GitHub is in <strong>dry-run</strong>: no GitHub App is \
             configured, so check runs are stored here and not posted.</p>\n",
        );
    }
    integrations(&mut h, p);
    connect_form(&mut h, p);
    analyses(&mut h, p.analyses);
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn integrations(h: &mut String, p: &Page<'_>) {
    h.push_str(
        "<section aria-labelledby=\"orgs\">\n<h2 id=\"orgs\">Connected organisations</h2>\n",
    );
    if p.integrations.is_empty() {
        h.push_str("<p>No Buildkite organisation is connected yet.</p>\n</section>\n");
        return;
    }
    h.push_str(concat!(
        "<table>\n<caption>Buildkite organisations and the state of their connection</caption>\n",
        "<thead><tr><th scope=\"col\">Organisation</th><th scope=\"col\">Status</th>",
        "<th scope=\"col\">API token</th><th scope=\"col\">Last webhook</th>",
        "<th scope=\"col\">Webhook URL</th><th scope=\"col\"><span class=\"sr-only\">Actions</span></th></tr></thead>\n<tbody>\n"
    ));
    for i in p.integrations {
        let status = match &i.reason {
            Some(reason) => {
                format!("{}<br><small>{}</small>", status_label(&i.status), escape(reason))
            }
            None => status_label(&i.status).to_owned(),
        };
        let _ = writeln!(
            h,
            "<tr><th scope=\"row\">{org}</th><td class=\"status-{class}\">{status}</td>\
             <td><code>…{last4}</code></td><td>{seen}</td><td><code>{path}</code></td>\
             <td><form method=\"post\" action=\"/integrations/{id}/remove\">\
             <button type=\"submit\" aria-label=\"Remove {org}\">Remove</button></form></td></tr>",
            org = escape(&i.org),
            class = escape(&i.status),
            last4 = escape(&i.token_last4),
            seen = i.last_webhook.as_deref().map_or_else(|| "never".to_owned(), escape),
            path = escape(&i.webhook_path),
            id = escape(&i.id),
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn connect_form(h: &mut String, p: &Page<'_>) {
    h.push_str(
        "<section aria-labelledby=\"connect\">\n<h2 id=\"connect\">Connect an organisation</h2>\n",
    );
    match p.notice {
        Some(Notice::Connected { org, webhook_url, webhook_token }) => {
            let _ = writeln!(
                h,
                "<div role=\"status\" class=\"notice ok\"><p><strong>Connected {org}.</strong> \
                 In Buildkite, add a webhook (Organization Settings → Notification Services → \
                 Webhook) with this URL and token, token mode “Signature”, event \
                 <code>build.finished</code>. The token is shown only this once.</p>\
                 <dl><dt>Webhook URL</dt><dd><code>{url}</code></dd>\
                 <dt>Webhook token</dt><dd><code>{token}</code></dd></dl></div>",
                org = escape(org),
                url = escape(webhook_url),
                token = escape(webhook_token),
            );
        }
        Some(Notice::Removed { org }) => {
            let _ = writeln!(
                h,
                "<div role=\"status\" class=\"notice ok\"><p>Removed {}. Its webhooks are \
                 refused and its token is no longer used.</p></div>",
                escape(org)
            );
        }
        Some(Notice::Error { message }) => {
            let _ = writeln!(
                h,
                "<div role=\"alert\" class=\"notice error\" id=\"connect-error\"><p>\
                 <strong>Not connected:</strong> {}</p></div>",
                escape(message)
            );
        }
        None => {}
    }
    let described = match p.notice {
        Some(Notice::Error { .. }) => " aria-describedby=\"connect-error token-help\"",
        _ => " aria-describedby=\"token-help\"",
    };
    let _ = writeln!(
        h,
        "<form method=\"post\" action=\"/integrations\">\n\
         <p><label for=\"org_slug\">Organisation slug</label>\
         <input id=\"org_slug\" name=\"org_slug\" required autocomplete=\"off\" \
         spellcheck=\"false\" pattern=\"[a-z0-9][a-z0-9\\-]*\" value=\"{org}\"></p>\n\
         <p><label for=\"api_token\">API access token</label>\
         <input id=\"api_token\" name=\"api_token\" type=\"password\" required \
         autocomplete=\"off\"{described}></p>\n\
         <p id=\"token-help\" class=\"help\">Create it under Personal Settings → API Access \
         Tokens with the scopes read_builds, read_build_logs, read_job_env, read_pipelines, \
         read_organizations, read_artifacts, read_teams, read_user and read_suites. It is \
         verified with Buildkite and stored encrypted.</p>\n\
         <p><button type=\"submit\">Connect</button></p>\n</form>\n</section>",
        org = escape(&p.form.org),
    );
}

fn analyses(h: &mut String, analyses: &[AnalysisView]) {
    h.push_str("<section aria-labelledby=\"recent\">\n<h2 id=\"recent\">Recent analyses</h2>\n");
    if analyses.is_empty() {
        h.push_str("<p>No failed build has been analysed yet.</p>\n</section>\n");
        return;
    }
    h.push_str(concat!(
        "<table>\n<caption>Failed builds, most recent first</caption>\n",
        "<thead><tr><th scope=\"col\">Build</th><th scope=\"col\">State</th>",
        "<th scope=\"col\">Category</th><th scope=\"col\">Cause</th>",
        "<th scope=\"col\">Check run</th><th scope=\"col\">Updated</th></tr></thead>\n<tbody>\n"
    ));
    for a in analyses {
        let build = match safe_href(&a.build_url) {
            Some(href) => format!("<a href=\"{href}\">{}</a>", escape(&a.build)),
            None => escape(&a.build),
        };
        let cause = match (&a.title, &a.reason) {
            (Some(t), _) => escape(t),
            (None, Some(r)) => escape(r),
            (None, None) => String::new(),
        };
        let check = match a.check_run_url.as_deref().and_then(safe_href) {
            Some(href) => format!("<a href=\"{href}\">check run</a>"),
            None if a.state == "reported" => "dry-run".to_owned(),
            None => "—".to_owned(),
        };
        let _ = writeln!(
            h,
            "<tr><th scope=\"row\">{build}</th><td>{state}</td><td>{category}</td>\
             <td>{cause}</td><td>{check}</td><td>{updated}</td></tr>",
            state = escape(&a.state),
            category = a.category.as_deref().map(escape).unwrap_or_default(),
            updated = escape(&a.updated),
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// The page's stylesheet, served from `/admin.css` so the CSP can forbid inline styles.
pub const STYLESHEET: &str = r#"
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #ffffff; --muted: #57606a;
  --ok: #116329; --err: #a40e26; --line: #d0d7de; --accent: #0550ae; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117;
  --muted: #9198a1; --ok: #56d364; --err: #ff7b72; --line: #3d444d; --accent: #79c0ff; } }
body { font: 16px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg);
  margin: 0 auto; max-width: 72rem; padding: 1rem 1.5rem; }
header p, .help, small { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; }
caption { text-align: left; color: var(--muted); padding-bottom: .25rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
thead th { border-bottom-width: 2px; }
code { font-family: ui-monospace, monospace; word-break: break-all; }
a { color: var(--accent); }
label { display: block; font-weight: 600; }
input { font: inherit; padding: .35rem .5rem; width: min(100%, 32rem);
  border: 1px solid var(--muted); border-radius: 4px; background: var(--bg); color: var(--fg); }
button { font: inherit; padding: .35rem 1rem; border-radius: 4px; border: 1px solid var(--fg);
  background: var(--fg); color: var(--bg); cursor: pointer; }
td button { background: transparent; color: var(--err); border-color: var(--err); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.notice { border-left: 4px solid; padding: .25rem 1rem; margin: 1rem 0; }
.notice.ok { border-color: var(--ok); } .notice.error { border-color: var(--err); }
.status-connected { color: var(--ok); }
.status-missing_scopes, .status-token_rejected, .status-removed { color: var(--err); }
.banner { border: 1px solid var(--line); padding: .5rem 1rem; border-radius: 4px; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn page_with(notice: Option<&Notice>, analyses: &[AnalysisView]) -> String {
        page(&Page {
            integrations: &[IntegrationView {
                id: "0190".into(),
                org: "acme<script>".into(),
                status: "missing_scopes".into(),
                reason: Some("missing scopes: read_job_env".into()),
                token_last4: "9f3a".into(),
                last_webhook: None,
                webhook_path: "/webhooks/buildkite/0190".into(),
            }],
            analyses,
            notice,
            form: &FormState { org: "\"><b>".into() },
            dry_run: true,
        })
    }

    #[test]
    fn text_from_outside_is_escaped_everywhere() {
        let html =
            page_with(Some(&Notice::Error { message: "<img src=x onerror=alert(1)>".into() }), &[]);
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<b>"));
        assert!(html.contains("acme&lt;script&gt;"));
        assert!(html.contains("role=\"alert\""));
    }

    #[test]
    fn status_is_said_in_words_with_its_reason() {
        let html = page_with(None, &[]);
        assert!(html.contains("Missing scopes<br><small>missing scopes: read_job_env</small>"));
        assert!(html.contains("never"), "no webhook seen yet");
    }

    #[test]
    fn only_http_links_become_links() {
        let row = AnalysisView {
            build: "acme/app #1".into(),
            build_url: "javascript:alert(1)".into(),
            state: "reported".into(),
            category: Some("compile".into()),
            title: Some("Compile error".into()),
            reason: None,
            check_run_url: None,
            updated: "2026-11-25T10:00:00Z".into(),
        };
        let html = page_with(None, &[row]);
        assert!(!html.contains("href=\"javascript"));
        assert!(html.contains("dry-run"));
    }
}
