//! [`Db`] on a SQLite connection: statements cached by the connection,
//! parameters and values converted one to one.

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Connection;

use crate::store::sql::{Db, Dialect, Param, Row, Val};
use crate::store::{StoreError, StoreResult};

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::Null => ToSqlOutput::Owned(Value::Null),
            Param::Int(n) => ToSqlOutput::Owned(Value::Integer(n)),
            Param::Real(x) => ToSqlOutput::Owned(Value::Real(x)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn val(v: ValueRef<'_>) -> StoreResult<Val> {
    Ok(match v {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(n) => Val::Int(n),
        ValueRef::Real(x) => Val::Real(x),
        ValueRef::Text(t) => Val::Text(
            std::str::from_utf8(t)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
                .to_string(),
        ),
        ValueRef::Blob(b) => Val::Blob(b.to_vec()),
    })
}

/// A unique or primary key violation is [`StoreError::Unique`].
fn error(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.code == rusqlite::ErrorCode::ConstraintViolation
                && matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
        {
            StoreError::Unique(msg.clone().unwrap_or_else(|| f.to_string()))
        }
        _ => StoreError::Db(e),
    }
}

impl Db for Connection {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> StoreResult<usize> {
        let mut st = self.prepare_cached(sql).map_err(error)?;
        st.execute(rusqlite::params_from_iter(params))
            .map_err(error)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        let mut st = self.prepare_cached(sql).map_err(error)?;
        let n = st.column_count();
        let mut rows = st
            .query(rusqlite::params_from_iter(params))
            .map_err(error)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(error)? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(val(r.get_ref(i).map_err(error)?)?);
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> StoreResult<()> {
        self.execute_batch(sql).map_err(error)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}
