//! Finexer's list envelope and offset paging:
//! `{"data": [...], "count": n, "paging": {"total", "next", "prev"}}`.

use serde::Serialize;
use url::Url;

use super::error::{ApiError, ApiResult};
use super::params::Params;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub offset: usize,
    pub limit: usize,
}

impl PageRequest {
    /// `offset` (default 0) and `limit` (default 20; above 100 is capped at 100, as
    /// Finexer documents "up to 100"; 0 is refused because it can never make progress).
    pub fn take_from(params: &mut Params) -> ApiResult<Self> {
        let offset = params.optional_number("offset")?.unwrap_or(0);
        let limit = match params.optional_number("limit")? {
            None => DEFAULT_LIMIT,
            Some(0) => return Err(ApiError::invalid_parameter("limit", "must be at least 1")),
            Some(n) => n.min(MAX_LIMIT),
        };
        Ok(Self { offset, limit })
    }
}

#[derive(Debug, Serialize)]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    pub count: usize,
    pub paging: Paging,
}

/// `next`/`prev` are absolute URLs of the neighbouring pages, or null at either end.
#[derive(Debug, Serialize)]
pub struct Paging {
    pub total: usize,
    pub next: Option<String>,
    pub prev: Option<String>,
}

/// Where a list lives, with its filters, so neighbouring pages can be linked.
pub struct ListLocation {
    url: Option<Url>,
}

impl ListLocation {
    pub fn new(public_base_url: &str, path: &str, filters: &[(&str, Option<&str>)]) -> Self {
        let url = Url::parse(public_base_url)
            .ok()
            .and_then(|base| base.join(path).ok());
        let url = url.map(|mut url| {
            let present: Vec<_> = filters
                .iter()
                .filter_map(|(key, value)| value.map(|value| (*key, value)))
                .collect();
            if !present.is_empty() {
                url.query_pairs_mut().extend_pairs(present);
            }
            url
        });
        Self { url }
    }

    fn page_url(&self, offset: usize, limit: usize) -> Option<String> {
        let mut url = self.url.clone()?;
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string())
            .append_pair("offset", &offset.to_string());
        Some(url.into())
    }
}

/// Cuts one page out of the full, already filtered and ordered list.
pub fn paginate<T>(all: Vec<T>, page: PageRequest, location: &ListLocation) -> ListResponse<T> {
    let total = all.len();
    let data: Vec<T> = all.into_iter().skip(page.offset).take(page.limit).collect();
    let next = (page.offset.saturating_add(page.limit) < total)
        .then(|| location.page_url(page.offset + page.limit, page.limit))
        .flatten();
    let prev = (page.offset > 0)
        .then(|| location.page_url(page.offset.saturating_sub(page.limit), page.limit))
        .flatten();
    ListResponse {
        count: data.len(),
        data,
        paging: Paging { total, next, prev },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_link_to_their_neighbours() {
        let location = ListLocation::new(
            "http://127.0.0.1:1",
            "/bank_accounts",
            &[("customer", Some("cus_1")), ("consent", None)],
        );
        let page = paginate(
            (0..25).collect(),
            PageRequest {
                offset: 20,
                limit: 20,
            },
            &location,
        );
        assert_eq!(page.data, (20..25).collect::<Vec<_>>());
        assert_eq!(page.count, 5);
        assert_eq!(page.paging.total, 25);
        assert!(page.paging.next.is_none());
        assert_eq!(
            page.paging.prev.as_deref(),
            Some("http://127.0.0.1:1/bank_accounts?customer=cus_1&limit=20&offset=0")
        );
    }
}
