//! The selector side tables (`entry_selectors`, `agent_selectors`): one row
//! per (owner, type, value).

use std::collections::HashMap;

use meshid_identity::Selector;
use sqlx::{QueryBuilder, Row};

use super::{Conn, Db};
use crate::store::StoreError;
use crate::store::codec;

/// One selector side table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Table {
    name: &'static str,
    owner: &'static str,
}

/// Selectors of registration entries, keyed by entry ID.
pub(super) const ENTRY: Table = Table {
    name: "entry_selectors",
    owner: "entry_id",
};
/// Selectors of agents, keyed by agent SPIFFE ID.
pub(super) const AGENT: Table = Table {
    name: "agent_selectors",
    owner: "agent_id",
};

/// The selectors of `owners`, sorted, by owner.
pub(super) async fn load(
    conn: &mut Conn,
    table: Table,
    owners: &[String],
) -> Result<HashMap<String, Vec<Selector>>, StoreError> {
    let mut out: HashMap<String, Vec<Selector>> = HashMap::new();
    if owners.is_empty() {
        return Ok(out);
    }
    let Table { name, owner } = table;
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT {owner} AS owner, type, value FROM {name} WHERE {owner} IN ("
    ));
    let mut list = qb.separated(", ");
    for o in owners {
        list.push_bind(o.clone());
    }
    qb.push(") ORDER BY type, value");
    for row in qb.build().fetch_all(&mut *conn).await? {
        let key: String = row.try_get("owner")?;
        let sel = codec::selector(
            &row.try_get::<String, _>("type")?,
            &row.try_get::<String, _>("value")?,
            name,
            &key,
        )?;
        out.entry(key).or_default().push(sel);
    }
    Ok(out)
}

/// Inserts `selectors` for `owner` in one statement.
pub(super) async fn insert(
    conn: &mut Conn,
    table: Table,
    owner: &str,
    selectors: &[Selector],
) -> Result<(), StoreError> {
    if selectors.is_empty() {
        return Ok(());
    }
    let Table {
        name,
        owner: column,
    } = table;
    let mut qb = QueryBuilder::<Db>::new(format!("INSERT INTO {name} ({column}, type, value) "));
    qb.push_values(selectors, |mut b, s| {
        b.push_bind(owner.to_owned())
            .push_bind(s.kind().to_owned())
            .push_bind(s.value().to_owned());
    });
    qb.build().execute(&mut *conn).await?;
    Ok(())
}
