//! Ingest's client of the AWS Glue Schema Registry (feature `glue`): `GetSchemaVersion` by the
//! id a record's Glue header names, as [`pipeline_ingest::GlueSchemas`]. Only versions of
//! schemas in the configured registry are taken: one of another registry reads as not found,
//! so the records that name it are quarantined, as they would be with a registry file.

use aws_sdk_glue::error::{DisplayErrorContext, ProvideErrorMetadata};
use pipeline_ingest::{FetchError, Fetched, GlueSchemaVersion, GlueSchemas};

use crate::cause::Cause;

/// Fetches schema versions of one Glue registry.
#[derive(Debug, Clone)]
pub struct GlueSchemaClient {
    client: aws_sdk_glue::Client,
    registry: String,
}

impl GlueSchemaClient {
    /// A client for the registry named `registry`, built from the functions' one SDK config.
    pub fn new(sdk: &aws_config::SdkConfig, registry: impl Into<String>) -> Self {
        GlueSchemaClient {
            client: aws_sdk_glue::Client::new(sdk),
            registry: registry.into(),
        }
    }
}

/// The registry and schema names in a schema ARN
/// (`arn:aws:glue:REGION:ACCOUNT:schema/REGISTRY/SCHEMA`).
fn names_in(arn: &str) -> Option<(&str, &str)> {
    let path = arn.split_once(":schema/")?.1;
    path.split_once('/')
}

#[async_trait::async_trait]
impl GlueSchemas for GlueSchemaClient {
    async fn get_schema_version(&self, version_id: &str) -> Result<Fetched, FetchError> {
        let out = match self
            .client
            .get_schema_version()
            .schema_version_id(version_id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let code = e.code().unwrap_or_default();
                if matches!(code, "EntityNotFoundException" | "InvalidInputException") {
                    return Ok(Fetched::NotFound);
                }
                let text = DisplayErrorContext(&e).to_string();
                return Err(match Cause::of(&e) {
                    Cause::Throttled | Cause::Unavailable => FetchError::Unavailable(text),
                    Cause::Rejected => FetchError::Rejected(text),
                });
            }
        };
        let arn = out.schema_arn().unwrap_or_default();
        let Some((registry, schema)) = names_in(arn) else {
            return Ok(Fetched::NotFound);
        };
        if registry != self.registry {
            return Ok(Fetched::NotFound);
        }
        Ok(Fetched::Found(GlueSchemaVersion {
            schema_name: schema.to_owned(),
            data_format: out
                .data_format()
                .map(|f| f.as_str().to_owned())
                .unwrap_or_default(),
            definition: out.schema_definition().unwrap_or_default().to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_and_schema_come_from_the_schema_arn() {
        assert_eq!(
            names_in("arn:aws:glue:eu-west-1:123456789012:schema/payments/payment-authorized-v1"),
            Some(("payments", "payment-authorized-v1"))
        );
        assert_eq!(names_in("arn:aws:glue:eu-west-1:1:registry/payments"), None);
    }
}
