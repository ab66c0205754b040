//! HTML for the consent page: plain forms, inline CSS, no JavaScript.
//! Every value that did not come from this file goes through `escape`.

use std::fmt::Write;

use sha2::{Digest, Sha256};

use super::templates::Template;

pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// One screen of the consent page.
pub struct Screen<'a> {
    /// Used as the `id` of `<main>` (`step-<name>`) and `data-step` on `<body>`.
    pub step: &'a str,
    pub title: &'a str,
    pub template: &'a Template,
    /// Already-escaped HTML of the card's content.
    pub content: String,
    /// Seed for the QR placeholder; `None` hides the box.
    pub qr_seed: Option<&'a str>,
}

impl Screen<'_> {
    pub fn render(&self) -> String {
        let brand = escape(self.template.display_name);
        let initial = escape(
            &self
                .template
                .display_name
                .chars()
                .take(1)
                .collect::<String>(),
        );
        let qr_box = self.qr_seed.map(qr_placeholder).unwrap_or_default();
        format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {brand}</title>
<style>{css}</style>
</head>
<body data-template="{template_id}" data-step="{step}" style="--accent: {accent}">
<main class="card" id="step-{step}">
<header class="brand"><span class="brand-mark">{initial}</span><span class="brand-name" id="brand-name">{brand}</span><span class="sandbox-badge">Sandbox</span></header>
<section class="content">
{content}
</section>
{qr_box}
<footer>Secured by Finexer · sandbox environment, no real bank is contacted</footer>
</main>
</body>
</html>
"#,
            title = escape(self.title),
            css = STYLE,
            template_id = escape(self.template.id),
            step = escape(self.step),
            accent = escape(self.template.accent),
            content = self.content,
        )
    }
}

/// "Open on your phone": a deterministic pattern standing in for a QR code.
fn qr_placeholder(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut cells = String::new();
    for index in 0..81 {
        let (row, column) = (index / 9, index % 9);
        // Keep the three corner "finder" squares dark, like a real QR code.
        let outside_middle = |n: usize| !(3..=5).contains(&n);
        let in_finder = outside_middle(row) && outside_middle(column) && !(row > 5 && column > 5);
        let bit = (digest[index % 32] >> (index % 8)) & 1 == 1;
        let class = if in_finder || bit { "on" } else { "off" };
        let _ = write!(cells, r#"<i class="{class}"></i>"#);
    }
    format!(
        r#"<aside class="qr" id="qr-box">
<div class="qr-code" aria-hidden="true">{cells}</div>
<div><strong>Open on your phone</strong><p class="muted">Scan the code with your phone's camera to continue in your banking app.</p></div>
</aside>"#
    )
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
 background:#f2f4f8;color:#1c2430;font:16px/1.5 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;padding:24px}
.card{background:#fff;width:100%;max-width:460px;border-radius:14px;box-shadow:0 8px 30px rgba(20,30,60,.12);overflow:hidden}
.brand{display:flex;align-items:center;gap:10px;padding:16px 24px;background:var(--accent);color:#fff}
.brand-mark{width:32px;height:32px;border-radius:50%;background:rgba(255,255,255,.2);display:flex;align-items:center;justify-content:center;font-weight:700}
.brand-name{font-weight:600;font-size:18px;flex:1}
.sandbox-badge{font-size:12px;background:rgba(0,0,0,.2);padding:2px 8px;border-radius:999px}
.content{padding:24px}
h1{font-size:21px;margin:0 0 8px}
.muted{color:#5b6575;font-size:14px;margin:4px 0}
dl.details{display:grid;grid-template-columns:auto 1fr;gap:6px 16px;margin:16px 0;font-size:14px}
dl.details dt{color:#5b6575}
dl.details dd{margin:0;font-weight:500;word-break:break-word}
ul.scopes{margin:8px 0 16px;padding-left:20px}
button,.button{font:inherit;border-radius:10px;padding:12px 16px;cursor:pointer;border:1px solid transparent;width:100%;display:block;text-align:center;text-decoration:none}
.primary{background:var(--accent);color:#fff;font-weight:600}
.secondary{background:#fff;color:#1c2430;border-color:#cfd5df;margin-top:10px}
.primary:hover,.secondary:hover{filter:brightness(.95)}
.banks{display:grid;gap:10px;margin-top:16px}
.bank{display:flex;align-items:center;gap:12px;background:#fff;border:1px solid #dde2ea;text-align:left}
.bank:hover{border-color:var(--accent)}
.bank-logo{width:36px;height:36px;border-radius:50%;display:inline-flex;align-items:center;justify-content:center;font-weight:700;flex:none}
.selected-bank{display:flex;align-items:center;gap:12px;padding:12px;border:1px solid #dde2ea;border-radius:10px;margin:16px 0}
.change{display:block;margin-top:14px;font-size:14px;color:var(--accent);text-align:center}
.actions{margin-top:16px}
.notice{padding:12px;border-radius:10px;background:#fff4e5;color:#7a4a00;font-size:14px}
.qr{display:flex;gap:16px;align-items:center;margin:0 24px 20px;padding:14px;border:1px dashed #cfd5df;border-radius:10px}
.qr-code{display:grid;grid-template-columns:repeat(9,8px);grid-auto-rows:8px;flex:none}
.qr-code .on{background:#1c2430}.qr-code .off{background:#fff}
ul.bank-consents{list-style:none;margin:16px 0 0;padding:0;display:grid;gap:10px}
.bank-consent{padding:12px;border:1px solid #dde2ea;border-radius:10px;word-break:break-word}
.consent-status{font-size:13px;background:#eef1f5;padding:1px 8px;border-radius:999px}
footer{padding:12px 24px;font-size:12px;color:#8a93a3;border-top:1px solid #eef1f5}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
