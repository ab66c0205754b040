//! `/bank`: a stand-in for the account holder's own bank, where access given
//! to apps can be withdrawn. A revoke here is a bank-side cancellation: the
//! consent becomes `canceled` and Finexer sends `consent.canceled`.
//!
//! For browser tests: `<main id="step-bank-consents">`, one
//! `li[data-consent-id][data-status]` per consent, and for each authorized one
//! `button[data-consent-id]` (also `#revoke-<id>`) reading "Revoke at the bank".

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Response};

use super::html::{Screen, escape};
use super::templates::Template;
use super::{encode_path_segment, error_page, see_other};
use crate::api::consents::revoke_at_bank;
use crate::api::params::Params;
use crate::clock::format_date;
use crate::model::{Consent, ConsentStatus};
use crate::providers::find_bank;
use crate::state::SandboxState;

pub const BANK_PATH: &str = "/bank";

const BANK_TEMPLATE: Template = Template {
    id: "bank",
    display_name: "Your bank",
    app_name: "Your bank",
    accent: "#0b3d91",
};

/// `/bank` itself or a path under it (not `/bank_accounts`).
pub fn is_bank_path(path: &str) -> bool {
    path.strip_prefix(BANK_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Every consent, newest first; `?customer=` narrows it to one account holder.
pub async fn show(State(state): State<SandboxState>, uri: Uri) -> Response {
    let customer = customer_of(&mut Params::parse(
        uri.query().unwrap_or_default().as_bytes(),
    ));
    let mut consents = state.store.consents_where(|consent| {
        customer.is_none() || consent.customer.as_deref() == customer.as_deref()
    });
    consents.reverse();
    let scope = match &customer {
        Some(id) => format!(
            r#"<p class="muted" id="customer-filter">Customer {}. <a href="{BANK_PATH}">Show every customer</a></p>"#,
            escape(id)
        ),
        None => String::new(),
    };
    let list = if consents.is_empty() {
        r#"<p class="muted" id="no-consents">No app has asked for access yet.</p>"#.to_owned()
    } else {
        let items: String = consents
            .iter()
            .map(|consent| consent_item(consent, customer.as_deref()))
            .collect();
        format!(r#"<ul class="bank-consents" id="bank-consents">{items}</ul>"#)
    };
    let screen = Screen {
        step: "bank-consents",
        title: "Connected apps",
        template: &BANK_TEMPLATE,
        content: format!(
            r#"<h1>Apps with access to your accounts</h1>
<p class="muted">Withdrawing access here ends it at your bank straight away; the app is told through Finexer.</p>
{scope}{list}"#
        ),
        qr_seed: None,
    };
    Html(screen.render()).into_response()
}

/// The "Revoke at the bank" button: cancels, then back to the list.
pub async fn revoke(
    State(state): State<SandboxState>,
    Path(consent_id): Path<String>,
    body: Bytes,
) -> Response {
    let customer = customer_of(&mut Params::parse(&body));
    match revoke_at_bank(&state, &consent_id) {
        Ok(_) => see_other(&list_path(customer.as_deref())),
        Err(error) => error_page(
            error.status,
            &BANK_TEMPLATE,
            "Access not withdrawn",
            &error.message,
        ),
    }
}

fn customer_of(params: &mut Params) -> Option<String> {
    params
        .optional("customer")
        .ok()
        .flatten()
        .filter(|id| !id.is_empty())
}

fn list_path(customer: Option<&str>) -> String {
    match customer {
        Some(id) => format!("{BANK_PATH}?customer={}", encode_path_segment(id)),
        None => BANK_PATH.to_owned(),
    }
}

fn consent_item(consent: &Consent, customer: Option<&str>) -> String {
    let bank = match consent.provider.as_deref() {
        Some(id) => find_bank(id).map_or(id, |bank| bank.name),
        None => "Bank not chosen yet",
    };
    let until = consent
        .expiry_date
        .filter(|_| consent.status == ConsentStatus::Authorized)
        .map(|expiry| format!(" · until {}", format_date(expiry.date())))
        .unwrap_or_default();
    let revoke_button = if consent.status == ConsentStatus::Authorized {
        let hidden = customer
            .map(|id| {
                format!(
                    r#"<input type="hidden" name="customer" value="{}">"#,
                    escape(id)
                )
            })
            .unwrap_or_default();
        format!(
            r#"<form method="post" action="{action}">{hidden}<button type="submit" class="secondary" id="revoke-{id}" data-consent-id="{id}">Revoke at the bank</button></form>"#,
            action = escape(&format!(
                "{BANK_PATH}/consents/{}/revoke",
                encode_path_segment(&consent.id)
            )),
            id = escape(&consent.id),
        )
    } else {
        String::new()
    };
    format!(
        r#"<li class="bank-consent" data-consent-id="{id}" data-status="{status}"><strong>{bank}</strong> <span class="consent-status">{status}</span><br><span class="muted">{id} · customer {customer}{until}</span>{revoke_button}</li>"#,
        id = escape(&consent.id),
        status = escape(consent.status.as_str()),
        bank = escape(bank),
        customer = escape(consent.customer.as_deref().unwrap_or("none")),
        until = escape(&until),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_paths_do_not_include_the_bank_accounts_api() {
        assert!(is_bank_path("/bank"));
        assert!(is_bank_path("/bank/consents/bc_1/revoke"));
        assert!(!is_bank_path("/bank_accounts"));
        assert!(!is_bank_path("/bankx"));
    }
}
