//! `erase-user --user <sub>`: erases one user's data on request
//! (docs/runbook.md): revokes their consents at Finexer, then deletes their
//! records. Runs with the stack's configuration and AWS credentials in the
//! environment, as the functions do (`CONSENT_TABLE`, `FINEXER_API_KEY_SECRET_ID`,
//! `FINEXER_BASE_URL`, ...). Prints what it did as JSON.

use std::process::ExitCode;

const USAGE: &str = "\
Usage: erase-user --user <sub>

Revokes every consent of the user (the JWT `sub` the API knows them by) at
Finexer, then deletes their consents, states and customer id from the table.
A failure deletes nothing; run it again to finish. Configuration comes from
the environment, as for the functions (README.md, Configuration).";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let user = match args.as_slice() {
        [flag, user] if flag == "--user" && !user.trim().is_empty() => user.clone(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let app = match shared::App::from_env().await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("erase-user: {e}");
            return ExitCode::FAILURE;
        }
    };
    match shared::handlers::erasure::erase_user(&app, &user).await {
        Ok(erased) => {
            println!("{}", serde_json::json!({ "user": user, "erased": erased }));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("erase-user: {e} (nothing of this user was deleted; run again to finish)");
            ExitCode::FAILURE
        }
    }
}
