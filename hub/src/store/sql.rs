//! The thin SQL layer under both backends: the feature modules write their
//! statements once, with `?N` placeholders and the subset of SQL that SQLite
//! and PostgreSQL share, against [`Db`]; each backend implements it on its
//! connection (SQLite in `sqlite::db`, PostgreSQL in `postgres::db`, which
//! turns `?N` into `$N`). Where the dialects differ the caller asks
//! [`Db::dialect`] and keeps both spellings side by side.
//!
//! Parameters are [`Param`]s (built by [`p!`] from anything [`ToParam`]),
//! rows come back owned ([`Row`], read with [`Row::get`]). Integers are
//! 64-bit on both sides; booleans are stored as 0/1 integers on both, so a
//! row reads the same whichever store wrote it.

use super::{StoreError, StoreResult};

/// Which SQL a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (the embedded store).
    Sqlite,
    /// PostgreSQL (several hubs on one store).
    Postgres,
}

/// A statement's parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// SQL NULL.
    Null,
    /// An integer (booleans are 0 and 1).
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// A value a parameter can be made of.
pub trait ToParam {
    /// As a parameter.
    fn param(&self) -> Param<'_>;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn param(&self) -> Param<'_> {
                Param::Int(*self as i64)
            }
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8);

impl ToParam for bool {
    fn param(&self) -> Param<'_> {
        Param::Int(i64::from(*self))
    }
}
impl ToParam for f64 {
    fn param(&self) -> Param<'_> {
        Param::Real(*self)
    }
}
impl ToParam for str {
    fn param(&self) -> Param<'_> {
        Param::Text(self)
    }
}
impl ToParam for String {
    fn param(&self) -> Param<'_> {
        Param::Text(self)
    }
}
impl ToParam for [u8] {
    fn param(&self) -> Param<'_> {
        Param::Blob(self)
    }
}
impl ToParam for Vec<u8> {
    fn param(&self) -> Param<'_> {
        Param::Blob(self)
    }
}
impl<T: ToParam + ?Sized> ToParam for &T {
    fn param(&self) -> Param<'_> {
        (**self).param()
    }
}
impl<T: ToParam> ToParam for Option<T> {
    fn param(&self) -> Param<'_> {
        match self {
            Some(v) => v.param(),
            None => Param::Null,
        }
    }
}

/// Parameters of a statement: `p![a, b]` is `&[a.param(), b.param()]`.
macro_rules! p {
    ($($e:expr),* $(,)?) => {
        &[$($crate::store::sql::ToParam::param(&$e)),*][..]
    };
}
pub(crate) use p;

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// NULL.
    Null,
    /// An integer (a boolean reads as 0 or 1).
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A row, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Val>);

/// What a column can be read as.
pub trait FromVal: Sized {
    /// From a value; `None` if it has another type.
    fn from_val(v: &Val) -> Option<Self>;
}

impl FromVal for i64 {
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Int(n) => Some(*n),
            _ => None,
        }
    }
}
impl FromVal for bool {
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Int(n) => Some(*n != 0),
            _ => None,
        }
    }
}
impl FromVal for f64 {
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Real(x) => Some(*x),
            Val::Int(n) => Some(*n as f64),
            _ => None,
        }
    }
}
impl FromVal for String {
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromVal for Vec<u8> {
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}
impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Null => Some(None),
            v => T::from_val(v).map(Some),
        }
    }
}

impl Row {
    /// Column `i` as `T`; a missing column or another type is corrupt.
    pub fn get<T: FromVal>(&self, i: usize) -> StoreResult<T> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {i}")))?;
        T::from_val(v).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "column {i} is {v:?}, not a {}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// Column `i`'s bytes, borrowed.
    pub fn blob(&self, i: usize) -> StoreResult<&[u8]> {
        match self.0.get(i) {
            Some(Val::Blob(b)) => Ok(b),
            v => Err(StoreError::Corrupt(format!(
                "column {i} is {v:?}, not bytes"
            ))),
        }
    }
}

/// A connection to either database.
pub trait Db {
    /// Run a statement; rows changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> StoreResult<usize>;
    /// Run a query; all its rows.
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> StoreResult<Vec<Row>>;
    /// Run statements without parameters.
    fn batch(&mut self, sql: &str) -> StoreResult<()>;
    /// Which SQL it speaks.
    fn dialect(&self) -> Dialect;
}

impl dyn Db + '_ {
    /// The first row, if any.
    pub fn opt(&mut self, sql: &str, params: &[Param<'_>]) -> StoreResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row; none is corrupt.
    pub fn one(&mut self, sql: &str, params: &[Param<'_>]) -> StoreResult<Row> {
        self.opt(sql, params)?
            .ok_or_else(|| StoreError::Corrupt("a query gave no row".into()))
    }

    /// Each row read with `f`.
    pub fn map<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: impl FnMut(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.query(sql, params)?.iter().map(f).collect()
    }

    /// Whether it is PostgreSQL.
    pub fn is_pg(&self) -> bool {
        self.dialect() == Dialect::Postgres
    }
}

/// Run `f` in a transaction: committed if it returns `Ok`, rolled back if
/// it fails.
pub fn tx<T>(db: &mut dyn Db, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
    begin(db, "BEGIN", f)
}

/// [`tx`] that takes SQLite's write lock at the start (`BEGIN IMMEDIATE`),
/// so concurrent writers serialize before they read; on PostgreSQL the
/// statements lock their rows (`FOR UPDATE`, see [`for_update`]).
pub fn tx_write<T>(
    db: &mut dyn Db,
    f: impl FnOnce(&mut dyn Db) -> StoreResult<T>,
) -> StoreResult<T> {
    let begin_sql = match db.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    };
    begin(db, begin_sql, f)
}

fn begin<T>(
    db: &mut dyn Db,
    begin_sql: &str,
    f: impl FnOnce(&mut dyn Db) -> StoreResult<T>,
) -> StoreResult<T> {
    db.batch(begin_sql)?;
    match f(db) {
        Ok(v) => {
            if let Err(e) = db.batch("COMMIT") {
                let _ = db.batch("ROLLBACK");
                return Err(e);
            }
            Ok(v)
        }
        Err(e) => {
            // A failed rollback leaves nothing to do: the error told is the first.
            let _ = db.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// ` FOR UPDATE` on PostgreSQL (the row stays locked until the
/// transaction ends), nothing on SQLite (whose `BEGIN IMMEDIATE` locks the
/// database).
pub fn for_update(db: &dyn Db) -> &'static str {
    match db.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
}
