//! What "sequential network calls on the critical path" means here.
//!
//! Every outbound call of one request is an interval (start, end) as the
//! counting proxy saw it. Calls whose intervals overlap were in flight at the
//! same time (e.g. a `tokio::join!` of a DynamoDB read and a Finexer read) and
//! count once; a call that starts after every earlier call has ended had to
//! wait for them and starts a new round. The number of rounds is the number of
//! sequential round trips: the request cannot finish in fewer network
//! latencies than that.

/// One outbound call, with times in microseconds on any common clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub start_us: u64,
    pub end_us: u64,
    pub label: String,
}

/// The calls grouped into rounds: each round is a maximal set of calls whose
/// intervals overlap (transitively), in time order.
pub fn rounds(calls: &[Call]) -> Vec<Vec<Call>> {
    let mut sorted = calls.to_vec();
    sorted.sort_by_key(|c| (c.start_us, c.end_us));
    let mut out: Vec<Vec<Call>> = Vec::new();
    let mut round_end = 0u64;
    for call in sorted {
        match out.last_mut() {
            Some(round) if call.start_us < round_end => {
                round_end = round_end.max(call.end_us);
                round.push(call);
            }
            _ => {
                round_end = call.end_us;
                out.push(vec![call]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(start_us: u64, end_us: u64, label: &str) -> Call {
        Call {
            start_us,
            end_us,
            label: label.into(),
        }
    }

    #[test]
    fn overlapping_calls_count_once_and_sequential_ones_each() {
        let calls = [
            call(0, 20, "GetItem"),
            call(1, 22, "GET /consents/x"),
            call(25, 45, "TransactWriteItems"),
        ];
        let r = rounds(&calls);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].len(), 2);
        assert_eq!(r[1][0].label, "TransactWriteItems");
    }

    #[test]
    fn a_call_starting_as_another_ends_is_sequential() {
        let r = rounds(&[call(0, 10, "a"), call(10, 20, "b"), call(30, 40, "c")]);
        assert_eq!(r.len(), 3);
        assert!(rounds(&[]).is_empty());
    }

    #[test]
    fn chained_overlaps_form_one_round() {
        let r = rounds(&[call(0, 10, "a"), call(5, 30, "b"), call(25, 40, "c")]);
        assert_eq!(r.len(), 1);
    }
}
