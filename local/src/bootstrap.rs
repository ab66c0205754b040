//! Creates the table and the secrets in the local emulator as the deploy
//! template defines them, when they are not there yet.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use shared::secrets::SecretIds;
use shared::store::dynamo::DynamoStore;

pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), String> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            tracing::info!(table, "creating the DynamoDB table");
            DynamoStore::new(client.clone(), table)
                .create_table()
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("DescribeTable: {}", DisplayErrorContext(&e))),
    }
}

/// Each configured secret: the Finexer API key, a fresh state-signing key,
/// and the local webhook signing secret.
pub async fn ensure_secrets(
    client: &aws_sdk_secretsmanager::Client,
    ids: &SecretIds,
    finexer_api_key: &str,
) -> Result<(), String> {
    let key: [u8; 32] = rand::random();
    let parts = [
        (
            &ids.finexer_api_key,
            json!({"finexer_api_key": finexer_api_key}),
        ),
        (
            &ids.state_keys,
            json!({"state_keys": [{"kid": "local-1", "key": URL_SAFE_NO_PAD.encode(key)}]}),
        ),
        (
            &ids.webhook_secrets,
            json!({"webhook_secrets": [crate::LOCAL_WEBHOOK_SECRET]}),
        ),
    ];
    for (id, value) in parts {
        if let Some(id) = id {
            ensure_secret(client, id, value).await?;
        }
    }
    Ok(())
}

async fn ensure_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    value: serde_json::Value,
) -> Result<(), String> {
    match client.describe_secret().secret_id(secret_id).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            tracing::info!(secret_id, "creating the secret");
            client
                .create_secret()
                .name(secret_id)
                .secret_string(value.to_string())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("CreateSecret: {}", DisplayErrorContext(&e)))
        }
        Err(e) => Err(format!("DescribeSecret: {}", DisplayErrorContext(&e))),
    }
}
