//! Which store a command reads or writes: the embedded SQLite file (the default) or the
//! DynamoDB tables of the local AWS stack or of a deployment. `run`, `show` and `anomalies`
//! take the same flags ([`StoreArgs`]).

use std::path::PathBuf;

#[cfg(feature = "aws")]
use pipeline_core::store::Tables;
use pipeline_sqlite::SqliteStore;

use crate::error::CliError;

/// The embedded database used when `--db` is not given.
pub const DEFAULT_DB: &str = "pipeline.db";

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// SQLite file (`--db`).
    Embedded,
    /// DynamoDB tables.
    Dynamodb,
}

/// The store flags shared by `run`, `show` and `anomalies`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The embedded SQLite file or DynamoDB (tables from the flags below; endpoint, region and
    /// credentials from the standard AWS environment, so `AWS_ENDPOINT_URL` reaches the local
    /// stack or an emulator).
    #[arg(long, value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,
    /// The embedded database (`run` creates it if missing).
    #[arg(long, default_value = DEFAULT_DB, env = "PIPELINE_DB")]
    pub db: PathBuf,
    /// DynamoDB events table.
    #[arg(long, env = "EVENTS_TABLE", default_value = pipeline_core::store::DEFAULT_EVENTS_TABLE)]
    pub events_table: String,
    /// DynamoDB entities table.
    #[arg(long, env = "ENTITIES_TABLE", default_value = pipeline_core::store::DEFAULT_ENTITIES_TABLE)]
    pub entities_table: String,
    /// DynamoDB quarantine table.
    #[arg(long, env = "QUARANTINE_TABLE", default_value = pipeline_core::store::DEFAULT_QUARANTINE_TABLE)]
    pub quarantine_table: String,
}

impl StoreArgs {
    /// The DynamoDB table names.
    #[cfg(feature = "aws")]
    pub fn tables(&self) -> Tables {
        Tables {
            events: self.events_table.clone(),
            entities: self.entities_table.clone(),
            quarantine: self.quarantine_table.clone(),
        }
    }

    /// The files of the store (none for DynamoDB), which no output may overwrite.
    pub fn files(&self) -> Vec<PathBuf> {
        match self.store {
            StoreKind::Embedded => crate::output::store_files(&self.db),
            StoreKind::Dynamodb => Vec::new(),
        }
    }

    /// What the store is, for messages.
    pub fn label(&self) -> String {
        match self.store {
            StoreKind::Embedded => self.db.display().to_string(),
            StoreKind::Dynamodb => format!(
                "dynamodb tables {}, {}, {}",
                self.events_table, self.entities_table, self.quarantine_table
            ),
        }
    }

    /// Opens (or creates) the embedded database.
    pub fn sqlite(&self) -> Result<SqliteStore, CliError> {
        SqliteStore::open(&self.db).map_err(|source| CliError::Db {
            path: self.db.display().to_string(),
            source,
        })
    }

    /// Opens the existing embedded database for reading only (`show`, `anomalies`,
    /// `report`): nothing in the file changes, and a read-only file is fine.
    pub fn readable_sqlite(&self) -> Result<SqliteStore, CliError> {
        self.existing_sqlite_with(SqliteStore::open_read_only)
    }

    /// Opens the existing embedded database to write to it (`replay`).
    pub fn existing_sqlite(&self) -> Result<SqliteStore, CliError> {
        self.existing_sqlite_with(SqliteStore::open)
    }

    fn existing_sqlite_with(
        &self,
        open: fn(&std::path::Path) -> Result<SqliteStore, pipeline_sqlite::Error>,
    ) -> Result<SqliteStore, CliError> {
        if !self.db.exists() {
            return Err(CliError::NotFound(format!(
                "no database at {} (run `pipeline run INPUT` first, pass --db, or --store dynamodb)",
                self.db.display()
            )));
        }
        open(&self.db).map_err(|source| CliError::Db {
            path: self.db.display().to_string(),
            source,
        })
    }

    /// The DynamoDB store (no request is sent until it is used).
    #[cfg(feature = "aws")]
    pub async fn dynamodb(&self) -> pipeline_aws::DynamoStore {
        pipeline_aws::DynamoStore::new(&pipeline_aws::sdk_config().await, self.tables())
    }
}

/// The error of a command or flag that needs the AWS SDK in a build without it.
#[cfg(not(feature = "aws"))]
pub fn without_aws(what: &str) -> CliError {
    CliError::Config(format!(
        "{what} talks to AWS, and this `pipeline` was built without the AWS SDK (it makes the \
         first build several minutes longer); build it with the `aws` feature: \
         cargo run -p pipeline-cli --features aws -- …"
    ))
}
