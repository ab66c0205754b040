//! White-label templates for the consent page (`?template=<id>`). Finexer keeps
//! these per app; the sandbox ships a few fixed ones so tests can see the effect.

pub struct Template {
    pub id: &'static str,
    /// Shown in the page header in place of "Finexer".
    pub display_name: &'static str,
    /// The app asking for access, as the account holder should recognise it.
    pub app_name: &'static str,
    pub accent: &'static str,
}

/// What the page looks like without `template`.
pub const DEFAULT_TEMPLATE: Template = Template {
    id: "default",
    display_name: "Finexer",
    app_name: "Sandbox App",
    accent: "#2f5bea",
};

pub const TEMPLATES: &[Template] = &[
    Template {
        id: "acme",
        display_name: "Acme Money",
        app_name: "Acme Money",
        accent: "#1a7f37",
    },
    Template {
        id: "nova",
        display_name: "Nova Finance",
        app_name: "Nova Finance",
        accent: "#7c3aed",
    },
];

pub fn find_template(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|template| template.id == id)
}
