//! The hosted consent page at `redirect.consent_url` (`/connect/{consent_id}`):
//! info → bank choice → approve/deny, then a 303 back to the consent's `return_url`.
//!
//! Element ids a browser test can rely on: `#continue` (info screen), bank buttons
//! `button[data-provider="<id>"]` (also `#bank-<id>`), `#approve`, `#deny`,
//! `#change-bank`, `#qr-box`, `#brand-name`, and `<main id="step-<name>">` for
//! the screen shown (`info`, `bank`, `confirm`, `closed`, `done`, `error`).

pub mod bank;
mod html;
pub mod templates;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use url::Url;

use crate::api::consents::authorize;
use crate::api::params::Params;
use crate::model::{Consent, ConsentStatus};
use crate::providers::{SANDBOX_BANKS, SandboxBank, find_bank};
use crate::state::SandboxState;
use html::{Screen, escape};
use templates::{DEFAULT_TEMPLATE, Template, find_template};

pub const PAGE_PREFIX: &str = "/connect";
pub const LOGO_PREFIX: &str = "/logos";

pub fn routes() -> Router<SandboxState> {
    Router::new()
        .route("/connect/{consent_id}", get(show))
        .route("/connect/{consent_id}/bank", post(choose_bank))
        .route("/connect/{consent_id}/decision", post(decide))
        .route("/logos/{file}", get(logo))
        .route(bank::BANK_PATH, get(bank::show))
        .route("/bank/consents/{consent_id}/revoke", post(bank::revoke))
}

/// The screens a pending consent goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Info,
    Bank,
    Confirm,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Bank => "bank",
            Self::Confirm => "confirm",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Info, Self::Bank, Self::Confirm]
            .into_iter()
            .find(|step| step.as_str() == text)
    }

    /// The screen to show for a request, given what the consent already knows.
    fn resolve(requested: Option<Self>, consent: &Consent, options: &PageOptions) -> Self {
        let bank_step = if consent.provider_chosen_by_api {
            Self::Confirm
        } else if consent.provider.is_some() && requested.is_none() {
            // Chosen on an earlier visit; a reload goes straight to the confirmation.
            Self::Confirm
        } else {
            Self::Bank
        };
        match requested {
            None if options.skip_info => bank_step,
            None | Some(Self::Info) => Self::Info,
            Some(Self::Bank) => bank_step,
            Some(Self::Confirm) if consent.provider.is_some() => Self::Confirm,
            Some(Self::Confirm) => Self::Bank,
        }
    }
}

/// `template`, `skip_info`, `skip_qr`: carried through every step in the URL
/// or hidden form fields so they survive the whole journey.
#[derive(Debug, Default, Clone)]
struct PageOptions {
    template_id: Option<String>,
    skip_info: bool,
    skip_qr: bool,
}

impl PageOptions {
    fn take_from(params: &mut Params) -> Self {
        let flag =
            |value: Result<Option<String>, _>| matches!(value, Ok(Some(text)) if text == "true");
        Self {
            template_id: params.optional("template").ok().flatten(),
            skip_info: flag(params.optional("skip_info")),
            skip_qr: flag(params.optional("skip_qr")),
        }
    }

    /// The template asked for; Finexer refuses to open the page for an unknown one.
    fn template(&self) -> Result<&'static Template, Refusal<'_>> {
        match self.template_id.as_deref() {
            None => Ok(&DEFAULT_TEMPLATE),
            Some(id) => find_template(id).ok_or(Refusal::UnknownTemplate(id)),
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(id) = &self.template_id {
            pairs.push(("template", id.clone()));
        }
        if self.skip_info {
            pairs.push(("skip_info", "true".to_owned()));
        }
        if self.skip_qr {
            pairs.push(("skip_qr", "true".to_owned()));
        }
        pairs
    }

    fn hidden_fields(&self) -> String {
        self.pairs()
            .iter()
            .map(|(name, value)| {
                format!(
                    r#"<input type="hidden" name="{name}" value="{}">"#,
                    escape(value)
                )
            })
            .collect()
    }

    /// Path of a step of the page, with the options in the query string.
    fn step_path(&self, consent_id: &str, step: Step) -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        serializer.append_pair("step", step.as_str());
        serializer.extend_pairs(self.pairs());
        format!(
            "{PAGE_PREFIX}/{}?{}",
            encode_path_segment(consent_id),
            serializer.finish()
        )
    }
}

fn encode_path_segment(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

async fn show(
    State(state): State<SandboxState>,
    Path(consent_id): Path<String>,
    uri: Uri,
) -> Response {
    let mut params = Params::parse(uri.query().unwrap_or_default().as_bytes());
    let options = PageOptions::take_from(&mut params);
    let requested = params
        .optional("step")
        .ok()
        .flatten()
        .as_deref()
        .and_then(Step::parse);
    let template = match options.template() {
        Ok(template) => template,
        Err(refusal) => return refusal.page(&DEFAULT_TEMPLATE),
    };
    let consent = match pending_consent(&state, &consent_id) {
        Ok(consent) => consent,
        Err(refusal) => return refusal.page(template),
    };
    let step = Step::resolve(requested, &consent, &options);
    let content = match step {
        Step::Info => info_content(&consent, template, &options),
        Step::Bank => bank_choice_content(&consent, &options),
        Step::Confirm => match consent.provider.as_deref().and_then(find_bank) {
            Some(bank) => confirm_content(&consent, bank, template, &options),
            None => bank_choice_content(&consent, &options),
        },
    };
    let screen = Screen {
        step: step.as_str(),
        title: "Connect your bank",
        template,
        content,
        qr_seed: (!options.skip_qr).then_some(consent.id.as_str()),
    };
    Html(screen.render()).into_response()
}

async fn choose_bank(
    State(state): State<SandboxState>,
    Path(consent_id): Path<String>,
    body: Bytes,
) -> Response {
    let mut params = Params::parse(&body);
    let options = PageOptions::take_from(&mut params);
    let template = match options.template() {
        Ok(template) => template,
        Err(refusal) => return refusal.page(&DEFAULT_TEMPLATE),
    };
    let Some(bank) = params
        .optional("provider")
        .ok()
        .flatten()
        .as_deref()
        .and_then(find_bank)
    else {
        return error_page(
            StatusCode::BAD_REQUEST,
            template,
            "Choose a bank",
            "That bank is not available.",
        );
    };
    if let Err(refusal) = pending_consent(&state, &consent_id) {
        return refusal.page(template);
    }
    let updated = state.store.update_consent(&consent_id, |consent| {
        if consent.provider_chosen_by_api && consent.provider.as_deref() != Some(bank.id) {
            return Err("The bank for this consent was chosen by the app and cannot be changed.");
        }
        consent.provider = Some(bank.id.to_owned());
        Ok(())
    });
    match updated {
        Ok(Some(_)) => see_other(&options.step_path(&consent_id, Step::Confirm)),
        Ok(None) => Refusal::ConsentNotFound.page(template),
        Err(why) => error_page(StatusCode::CONFLICT, template, "Bank already chosen", why),
    }
}

async fn decide(
    State(state): State<SandboxState>,
    Path(consent_id): Path<String>,
    body: Bytes,
) -> Response {
    let mut params = Params::parse(&body);
    let options = PageOptions::take_from(&mut params);
    let template = match options.template() {
        Ok(template) => template,
        Err(refusal) => return refusal.page(&DEFAULT_TEMPLATE),
    };
    let approve = match params.optional("decision").ok().flatten().as_deref() {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                template,
                "Something went wrong",
                "Please approve or deny the request.",
            );
        }
    };
    let consent = match pending_consent(&state, &consent_id) {
        Ok(consent) => consent,
        Err(refusal) => return refusal.page(template),
    };
    if approve && consent.provider.is_none() {
        return see_other(&options.step_path(&consent_id, Step::Bank));
    }

    let decided = state.store.update_consent(&consent_id, |consent| {
        // Someone may have decided in another tab since the page was loaded.
        if consent.status != ConsentStatus::Pending {
            return Err(consent.status);
        }
        if approve {
            authorize(consent);
        } else {
            consent.status = ConsentStatus::Canceled;
            consent.failure_code = Some("user_denied".to_owned());
            consent.failure_message = Some("The account holder denied access.".to_owned());
        }
        Ok(())
    });
    let consent = match decided {
        Ok(Some(consent)) => consent,
        Ok(None) => return Refusal::ConsentNotFound.page(template),
        Err(status) => return Refusal::NotPending(&consent_id, status).page(template),
    };

    let outcome: &[(&str, &str)] = if approve {
        &[("fx_consent", consent.id.as_str())]
    } else {
        &[
            ("error", "access_denied"),
            ("error_code", "user_denied"),
            ("fx_consent", consent.id.as_str()),
        ]
    };
    match consent
        .redirect
        .return_url
        .as_deref()
        .and_then(|url| with_parameters(url, outcome))
    {
        Some(location) => see_other(&location),
        // Finexer shows its own confirmation page when there is nowhere to return to.
        None => done_page(template, &consent, approve),
    }
}

async fn logo(Path(file): Path<String>) -> Response {
    let bank = file.strip_suffix(".svg").and_then(find_bank);
    match bank {
        Some(bank) => ([(header::CONTENT_TYPE, "image/svg+xml")], bank.logo_svg()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `return_url` with `extra` appended, keeping every parameter it already had.
fn with_parameters(return_url: &str, extra: &[(&str, &str)]) -> Option<String> {
    let mut url = Url::parse(return_url).ok()?;
    url.query_pairs_mut().extend_pairs(extra);
    Some(url.into())
}

/// Why the page cannot go on; small, so it can travel in a `Result`.
enum Refusal<'a> {
    UnknownTemplate(&'a str),
    ConsentNotFound,
    NotPending(&'a str, ConsentStatus),
}

impl Refusal<'_> {
    fn page(self, template: &Template) -> Response {
        match self {
            Self::UnknownTemplate(id) => error_page(
                StatusCode::NOT_FOUND,
                template,
                "This page cannot be opened",
                &format!("The template \u{201c}{id}\u{201d} does not exist."),
            ),
            Self::ConsentNotFound => not_found_page(template),
            Self::NotPending(consent_id, status) => closed_page(template, consent_id, status),
        }
    }
}

/// The consent, if it exists and is waiting for the account holder.
fn pending_consent<'a>(state: &SandboxState, consent_id: &'a str) -> Result<Consent, Refusal<'a>> {
    let consent = state
        .store
        .consent(consent_id)
        .ok_or(Refusal::ConsentNotFound)?;
    if consent.status != ConsentStatus::Pending {
        return Err(Refusal::NotPending(consent_id, consent.status));
    }
    Ok(consent)
}

fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response()
}

fn scope_list(consent: &Consent) -> String {
    let items: String = consent
        .scopes
        .iter()
        .map(|scope| format!("<li>{}</li>", escape(scope.describe())))
        .collect();
    format!(r#"<ul class="scopes">{items}</ul>"#)
}

fn access_until(consent: &Consent) -> String {
    consent
        .expiry_date
        .map(|expiry| {
            format!(
                "until {}",
                escape(&crate::clock::format_date(expiry.date()))
            )
        })
        .unwrap_or_else(|| "for 90 days after you approve".to_owned())
}

fn info_content(consent: &Consent, template: &Template, options: &PageOptions) -> String {
    let app = escape(template.app_name);
    let returns_to = consent
        .redirect
        .return_url
        .as_deref()
        .and_then(|url| Url::parse(url).ok())
        .and_then(|url| url.host_str().map(escape))
        .unwrap_or_else(|| "Finexer confirmation page".to_owned());
    let history = consent
        .retro_date
        .as_deref()
        .map(escape)
        .unwrap_or_else(|| "the last 90 days".to_owned());
    format!(
        r#"<h1>{app} would like to access your bank account information</h1>
<p class="muted">You will choose your bank and confirm there. No payment is made.</p>
<dl class="details" id="payee-info">
<dt>Recipient</dt><dd>{app}</dd>
<dt>Returns to</dt><dd>{returns_to}</dd>
<dt>Access</dt><dd>{until}</dd>
<dt>History from</dt><dd>{history}</dd>
<dt>Reference</dt><dd>{reference}</dd>
</dl>
<p class="muted">Information requested:</p>
{scopes}
<form method="get" action="{action}">
<input type="hidden" name="step" value="bank">
{hidden}
<button type="submit" class="primary" id="continue">Continue</button>
</form>"#,
        until = access_until(consent),
        reference = escape(&consent.id),
        scopes = scope_list(consent),
        action = escape(&format!(
            "{PAGE_PREFIX}/{}",
            encode_path_segment(&consent.id)
        )),
        hidden = options.hidden_fields(),
    )
}

fn bank_choice_content(consent: &Consent, options: &PageOptions) -> String {
    let buttons: String = SANDBOX_BANKS
        .iter()
        .filter(|bank| bank.roles.contains(&"ais"))
        .map(|bank| {
            format!(
                r#"<button type="submit" class="bank" name="provider" value="{id}" data-provider="{id}" id="bank-{id}">{logo}<span>{name}</span></button>"#,
                id = escape(bank.id),
                logo = bank_logo(bank),
                name = escape(bank.name),
            )
        })
        .collect();
    format!(
        r#"<h1>Choose your bank</h1>
<p class="muted">Select the bank that holds the account you want to connect.</p>
<form method="post" action="{action}">
{hidden}
<div class="banks">{buttons}</div>
</form>"#,
        action = escape(&format!(
            "{PAGE_PREFIX}/{}/bank",
            encode_path_segment(&consent.id)
        )),
        hidden = options.hidden_fields(),
    )
}

fn confirm_content(
    consent: &Consent,
    bank: &SandboxBank,
    template: &Template,
    options: &PageOptions,
) -> String {
    let change_bank = if consent.provider_chosen_by_api {
        String::new()
    } else {
        format!(
            r#"<a class="change" id="change-bank" href="{}">Choose a different bank</a>"#,
            escape(&options.step_path(&consent.id, Step::Bank))
        )
    };
    format!(
        r#"<h1>Connect to {bank_name}</h1>
<p class="muted">{app} is asking for access to:</p>
{scopes}
<div class="selected-bank" id="selected-bank" data-provider="{bank_id}">{logo}<strong>{bank_name}</strong></div>
<p class="muted">Access lasts {until}. You can withdraw it at any time.</p>
<form method="post" action="{action}" class="actions">
{hidden}
<button type="submit" class="primary" id="approve" name="decision" value="approve">Approve</button>
<button type="submit" class="secondary" id="deny" name="decision" value="deny">Deny</button>
</form>
{change_bank}"#,
        bank_name = escape(bank.name),
        bank_id = escape(bank.id),
        logo = bank_logo(bank),
        app = escape(template.app_name),
        scopes = scope_list(consent),
        until = access_until(consent),
        action = escape(&format!(
            "{PAGE_PREFIX}/{}/decision",
            encode_path_segment(&consent.id)
        )),
        hidden = options.hidden_fields(),
    )
}

fn bank_logo(bank: &SandboxBank) -> String {
    let [background, foreground] = bank.colors;
    format!(
        r#"<span class="bank-logo" style="background:{};color:{}">{}</span>"#,
        escape(background),
        escape(foreground),
        escape(&bank.name.chars().take(1).collect::<String>()),
    )
}

fn page(
    status: StatusCode,
    step: &str,
    title: &str,
    template: &Template,
    content: String,
) -> Response {
    let screen = Screen {
        step,
        title,
        template,
        content,
        qr_seed: None,
    };
    (status, Html(screen.render())).into_response()
}

fn error_page(status: StatusCode, template: &Template, title: &str, message: &str) -> Response {
    let content = format!(
        r#"<h1>{}</h1><p class="notice" id="error-message">{}</p>"#,
        escape(title),
        escape(message)
    );
    page(status, "error", title, template, content)
}

fn not_found_page(template: &Template) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        template,
        "Consent not found",
        "This link is not valid. Please return to the app and start again.",
    )
}

/// A consent that is not pending cannot be acted on; say so instead of redirecting.
fn closed_page(template: &Template, consent_id: &str, status: ConsentStatus) -> Response {
    let explanation = match status {
        ConsentStatus::New => "It is not ready yet: the app has not finished setting it up.",
        ConsentStatus::Authorized => "Access has already been approved.",
        ConsentStatus::Canceled => "It was denied or withdrawn.",
        ConsentStatus::Expired => "It has expired.",
        ConsentStatus::Failed => "It could not be completed.",
        ConsentStatus::Pending => "",
    };
    let content = format!(
        r#"<h1>This consent is {status}</h1>
<p class="notice" id="consent-status" data-status="{status}">{explanation} Please return to the app.</p>
<p class="muted">Reference: {reference}</p>"#,
        status = escape(status.as_str()),
        reference = escape(consent_id),
    );
    page(
        StatusCode::CONFLICT,
        "closed",
        "Consent unavailable",
        template,
        content,
    )
}

fn done_page(template: &Template, consent: &Consent, approved: bool) -> Response {
    let (title, message) = if approved {
        (
            "Bank connected",
            "You have approved access. You can close this window.",
        )
    } else {
        (
            "Access denied",
            "You have denied access. You can close this window.",
        )
    };
    let content = format!(
        r#"<h1>{title}</h1>
<p class="muted" id="consent-status" data-status="{status}">{message}</p>
<p class="muted">Reference: {reference}</p>"#,
        status = escape(consent.status.as_str()),
        reference = escape(&consent.id),
    );
    page(StatusCode::OK, "done", title, template, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_parameters_are_kept() {
        let location = with_parameters(
            "https://app.example/callback/s1?state=a%2Bb&x=1#frag",
            &[("fx_consent", "bc_1")],
        )
        .unwrap();
        assert_eq!(
            location,
            "https://app.example/callback/s1?state=a%2Bb&x=1&fx_consent=bc_1#frag"
        );
    }
}
