//! The sandbox's banks: a fixed handful of UK providers.

use serde::Serialize;

pub struct SandboxBank {
    pub id: &'static str,
    pub name: &'static str,
    pub roles: &'static [&'static str],
    /// Brand colours: background first, then text.
    pub colors: [&'static str; 2],
    /// Four-letter bank code used in generated IBANs.
    pub iban_bank_code: &'static str,
    /// First two digits of generated sort codes, like the real bank's range.
    pub sort_code_prefix: &'static str,
}

pub const SANDBOX_BANKS: &[SandboxBank] = &[
    SandboxBank {
        id: "sandbox-barclays",
        name: "Barclays (Sandbox)",
        roles: &["ais", "pis"],
        colors: ["#00aeef", "#ffffff"],
        iban_bank_code: "BARC",
        sort_code_prefix: "20",
    },
    SandboxBank {
        id: "sandbox-lloyds",
        name: "Lloyds Bank (Sandbox)",
        roles: &["ais", "pis"],
        colors: ["#006a4d", "#ffffff"],
        iban_bank_code: "LOYD",
        sort_code_prefix: "30",
    },
    SandboxBank {
        id: "sandbox-monzo",
        name: "Monzo (Sandbox)",
        roles: &["ais"],
        colors: ["#14233c", "#ff4f40"],
        iban_bank_code: "MONZ",
        sort_code_prefix: "04",
    },
    SandboxBank {
        id: "sandbox-hsbc",
        name: "HSBC UK (Sandbox)",
        roles: &["ais", "pis"],
        colors: ["#db0011", "#ffffff"],
        iban_bank_code: "HBUK",
        sort_code_prefix: "40",
    },
    SandboxBank {
        id: "sandbox-natwest",
        name: "NatWest (Sandbox)",
        roles: &["ais", "pis"],
        colors: ["#5a287d", "#ffffff"],
        iban_bank_code: "NWBK",
        sort_code_prefix: "60",
    },
    SandboxBank {
        id: "sandbox-santander",
        name: "Santander UK (Sandbox)",
        roles: &["ais"],
        colors: ["#ec0000", "#ffffff"],
        iban_bank_code: "ABBY",
        sort_code_prefix: "09",
    },
];

pub fn find_bank(id: &str) -> Option<&'static SandboxBank> {
    SANDBOX_BANKS.iter().find(|bank| bank.id == id)
}

/// A provider as `GET /providers` returns it.
#[derive(Debug, Serialize)]
pub struct Provider {
    pub id: &'static str,
    pub object: &'static str,
    pub name: &'static str,
    pub roles: &'static [&'static str],
    pub logo_url: String,
    pub bg_colors: [&'static str; 2],
    pub health_status: &'static str,
}

impl SandboxBank {
    pub fn to_provider(&self, public_base_url: &str) -> Provider {
        Provider {
            id: self.id,
            object: "provider",
            name: self.name,
            roles: self.roles,
            logo_url: format!("{public_base_url}/logos/{}.svg", self.id),
            bg_colors: self.colors,
            health_status: "ok",
        }
    }

    /// A small round badge with the bank's initial, served as its logo.
    pub fn logo_svg(&self) -> String {
        let initial = self.name.chars().next().unwrap_or('?');
        let [background, foreground] = self.colors;
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"64\" viewBox=\"0 0 64 64\">\
             <circle cx=\"32\" cy=\"32\" r=\"32\" fill=\"{background}\"/>\
             <text x=\"32\" y=\"42\" font-family=\"Arial, sans-serif\" font-size=\"28\" font-weight=\"bold\" \
             text-anchor=\"middle\" fill=\"{foreground}\">{initial}</text></svg>"
        )
    }
}
