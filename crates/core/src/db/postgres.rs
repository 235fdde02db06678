//! PostgreSQL: a database per service on one server, created on first start when allowed.

use super::*;

impl Db {
    /// The URL of database `name` on the PostgreSQL server at `server_url` (a URL without a
    /// database path, e.g. `postgres://postgres@127.0.0.1:5432?sslmode=require`): its query, and
    /// so `sslmode` and the other connection parameters, kept.
    pub fn postgres_database_url(server_url: &str, name: &str) -> Result<String, DbError> {
        let mut url = reqwest::Url::parse(server_url)
            .map_err(|e| DbError::Config(format!("the PostgreSQL URL: {e}")))?;
        url.set_path(&format!("/{name}"));
        Ok(url.into())
    }

    /// Creates database `name` on the PostgreSQL server at `server_url` (see
    /// [`Db::postgres_database_url`]) unless it exists; returns its URL.
    pub async fn ensure_postgres_database(server_url: &str, name: &str) -> Result<String, DbError> {
        let admin_url = Self::postgres_database_url(server_url, "postgres")?;
        let mut admin = PgConnection::connect(&admin_url).await?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_optional(&mut admin)
                .await?;
        if exists.is_none() {
            let create = format!("CREATE DATABASE \"{}\"", name.replace('"', ""));
            match sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&mut admin)
                .await
            {
                // Another instance created it meanwhile: PostgreSQL says so as 42P04
                // (duplicate_database), or, when the two commands overlap, as a unique violation
                // of its catalog (23505).
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
                other => {
                    other?;
                }
            }
        }
        Self::postgres_database_url(server_url, name)
    }

    /// Connects to a PostgreSQL database (one per service).
    pub async fn open_postgres(
        url: &str,
        name: &str,
        max_connections: u32,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self::build(
            name,
            Engine::Postgres(pool.clone()),
            Reader(ReaderKind::Postgres(pool)),
            clock,
        ))
    }
}
