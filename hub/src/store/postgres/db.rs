//! [`Db`] on a PostgreSQL connection: `?N` placeholders become `$N`,
//! statements are prepared once per connection, parameters convert to the
//! column types the server infers, and a connection the server dropped is
//! opened again on the next call.

use std::collections::HashMap;
use std::error::Error;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, Statement};

use super::dial::Dial;

use crate::store::sql::{Db, Dialect, Param, Row, Val};
use crate::store::{StoreError, StoreResult};

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(n) => match *ty {
                Type::INT4 => i32::try_from(n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(n)?.to_sql(ty, out),
                Type::BOOL => (n != 0).to_sql(ty, out),
                Type::FLOAT8 => (n as f64).to_sql(ty, out),
                Type::FLOAT4 => (n as f32).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => n.to_string().to_sql(ty, out),
                _ => n.to_sql(ty, out),
            },
            Param::Real(x) => match *ty {
                Type::FLOAT4 => (x as f32).to_sql(ty, out),
                _ => x.to_sql(ty, out),
            },
            Param::Text(s) => s.to_sql(ty, out),
            Param::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `?N` to `$N` (the shared statements hold no `?` in literals).
pub(crate) fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn val(r: &postgres::Row, i: usize) -> StoreResult<Val> {
    let ty = r.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map_or(Val::Null, Val::Int),
        Type::INT4 => r
            .try_get::<_, Option<i32>>(i)?
            .map_or(Val::Null, |n| Val::Int(n.into())),
        Type::INT2 => r
            .try_get::<_, Option<i16>>(i)?
            .map_or(Val::Null, |n| Val::Int(n.into())),
        Type::BOOL => r
            .try_get::<_, Option<bool>>(i)?
            .map_or(Val::Null, |b| Val::Int(b.into())),
        Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map_or(Val::Null, Val::Real),
        Type::FLOAT4 => r
            .try_get::<_, Option<f32>>(i)?
            .map_or(Val::Null, |x| Val::Real(x.into())),
        Type::BYTEA => r
            .try_get::<_, Option<Vec<u8>>>(i)?
            .map_or(Val::Null, Val::Blob),
        _ => r
            .try_get::<_, Option<String>>(i)
            .map_err(|_| StoreError::Corrupt(format!("column {i} has type {ty}")))?
            .map_or(Val::Null, Val::Text),
    })
}

/// `e` and its causes, one after the other (the driver's own text names
/// only the kind of failure).
pub fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// A unique violation is [`StoreError::Unique`], like SQLite's.
fn error(e: postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if *db.code() == SqlState::UNIQUE_VIOLATION => {
            StoreError::Unique(db.message().to_string())
        }
        _ => StoreError::Pg(e),
    }
}

/// One connection, its prepared statements, and how to open it again.
pub struct PgConn {
    dial: Dial,
    /// Always `Some` but while being dropped (see [`Drop`]).
    client: Option<Client>,
    statements: HashMap<String, Statement>,
}

impl Drop for PgConn {
    /// The sync client closes its connection on a runtime of its own, which
    /// panics on an async worker: a store dropped there (the hub's shutdown)
    /// closes its connections on a thread of their own.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("store-close".into())
                    .spawn(move || drop(client));
            }
        }
    }
}

impl PgConn {
    /// Connect with `config`.
    pub fn connect(dial: &Dial) -> Result<Self, postgres::Error> {
        Ok(PgConn {
            dial: dial.clone(),
            client: Some(dial.connect()?),
            statements: HashMap::new(),
        })
    }

    /// The client, connected again if the server closed it.
    fn client(&mut self) -> StoreResult<&mut Client> {
        let closed = self.client.as_ref().is_none_or(Client::is_closed);
        if closed {
            tracing::warn!("the store's connection closed; connecting again");
            let client = self
                .dial
                .connect()
                .map_err(|e| StoreError::Open(format!("cannot connect again: {}", chain(&e))))?;
            self.statements.clear();
            return Ok(self.client.insert(client));
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Open("the store's connection is gone".into()))
    }

    fn prepare(&mut self, sql: &str) -> StoreResult<Statement> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client()?.prepare(&placeholders(sql)).map_err(error)?;
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

fn args<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Db for PgConn {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> StoreResult<usize> {
        let st = self.prepare(sql)?;
        let n = self.client()?.execute(&st, &args(params)).map_err(error)?;
        Ok(n as usize)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        let st = self.prepare(sql)?;
        let rows = self.client()?.query(&st, &args(params)).map_err(error)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| val(r, i))
                    .collect::<StoreResult<_>>()
                    .map(Row)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> StoreResult<()> {
        self.client()?.batch_execute(sql).map_err(error)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}
