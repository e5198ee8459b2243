//! A blocking PostgreSQL session: tokio-postgres on a current-thread runtime.

use std::time::Duration;

use std::pin::Pin;

use futures_util::StreamExt;
use tokio_postgres::{Client, CopyOutStream, NoTls, SimpleQueryMessage};

use crate::config::PgTarget;
use crate::error::{Error, Result};

pub struct Session {
    rt: tokio::runtime::Runtime,
    client: Client,
    target: PgTarget,
}

impl Session {
    /// Connect to `target` (its database), or fail with a line that says what to fix.
    pub fn connect(target: &PgTarget) -> Result<Session> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the PostgreSQL client", e))?;
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&target.host)
            .port(target.port)
            .user(&target.user)
            .dbname(&target.db)
            .application_name("hcbackup")
            .connect_timeout(Duration::from_secs(10))
            .keepalives_idle(Duration::from_secs(60));
        if let Some(p) = &target.password {
            cfg.password(p.as_bytes());
        }
        let (client, conn) = rt
            .block_on(cfg.connect(NoTls))
            .map_err(|e| connect_error(target, &e))?;
        rt.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("PostgreSQL connection closed: {e}");
            }
        });
        Ok(Session {
            rt,
            client,
            target: target.clone(),
        })
    }

    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    /// Run statements (no results).
    pub fn batch(&self, sql: &str) -> Result<()> {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .map_err(|e| self.error(&e))
    }

    /// Rows as text (the simple query protocol): every value as PostgreSQL prints it.
    pub fn rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let msgs = self
            .rt
            .block_on(self.client.simple_query(sql))
            .map_err(|e| self.error(&e))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }

    /// The first column of the first row.
    pub fn value(&self, sql: &str) -> Result<Option<String>> {
        Ok(self
            .rows(sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// Start `COPY … TO STDOUT`; rows are pulled in batches with `CopyOut::fill`.
    pub fn copy_out(&self, sql: &str) -> Result<CopyOut<'_>> {
        let stream = self
            .rt
            .block_on(self.client.copy_out(sql))
            .map_err(|e| self.error(&e))?;
        Ok(CopyOut {
            session: self,
            stream: Box::pin(stream),
        })
    }

    fn error(&self, e: &tokio_postgres::Error) -> Error {
        let t = &self.target;
        Error::Failed(format!(
            "PostgreSQL {}:{} database {}: {}",
            t.host,
            t.port,
            t.db,
            message(e)
        ))
    }
}

/// A server error's own message (with its detail), or the client error.
pub fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

fn connect_error(t: &PgTarget, e: &tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    let at = format!("PostgreSQL at {}:{}", t.host, t.port);
    Error::Failed(match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            format!(
                "{at} refused user {}: {}; check POSTGRES_USER and POSTGRES_PASSWORD",
                t.user,
                message(e)
            )
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => format!(
            "{at} has no database {:?}; check POSTGRES_DB (or create the database)",
            t.db
        ),
        Some(_) => format!("{at}: {}", message(e)),
        None => format!(
            "cannot reach {at} ({}); is the server running? check POSTGRES_HOST and POSTGRES_PORT",
            source_chain(e)
        ),
    })
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `"name"` with inner quotes doubled: a safe SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with inner quotes doubled: a safe SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A running `COPY … TO STDOUT`: each item is one row, as the server sent it.
pub struct CopyOut<'s> {
    session: &'s Session,
    stream: Pin<Box<CopyOutStream>>,
}

impl CopyOut<'_> {
    /// Hand rows to `row` until about `limit` bytes went by; false once the COPY ended.
    pub fn fill(&mut self, limit: usize, row: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let session = self.session;
        let stream = &mut self.stream;
        session.rt.block_on(async {
            let mut n = 0;
            while n < limit {
                match stream.next().await {
                    Some(Ok(b)) => {
                        n += b.len();
                        row(&b);
                    }
                    Some(Err(e)) => return Err(session.error(&e)),
                    None => return Ok(false),
                }
            }
            Ok(true)
        })
    }
}
