//! Filters shared by the two delivery listings (the store's `deliveries` and the admin search).

use sqlx::{Postgres, QueryBuilder};
use tayori_app::ports::DeliveryCursor;
use tayori_domain::DeliveryStatus;

/// ` and status = '<status>'`. A literal, not a parameter: the status indexes are partial
/// (decided statuses in one, `processing` in the other), and PostgreSQL uses a partial index
/// only when it can prove the predicate, which a generic plan's parameter does not let it. The
/// value is one of the domain's fixed status names, never the caller's text.
pub(crate) fn push_status(sql: &mut QueryBuilder<Postgres>, status: DeliveryStatus) {
    sql.push(format_args!(" and status = '{}'", status.as_str()));
}

/// Keyset pagination: rows strictly older than the last one shown, so a deep page costs what
/// the first one does.
pub(crate) fn push_older_than(sql: &mut QueryBuilder<Postgres>, after: &DeliveryCursor) {
    sql.push(" and (created_at, delivery_id) < (")
        .push_bind(after.created_at)
        .push(", ")
        .push_bind(after.delivery_id.as_uuid())
        .push(")");
}
