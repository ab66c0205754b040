//! Bounded load with wrk (loopback only): a fixed number of connections for
//! at most a fixed time, p50/p90/p99 and every kind of error, from a Lua
//! `done` hook that prints one JSON line.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

pub struct LoadSpec<'a> {
    pub url: &'a str,
    pub threads: u32,
    pub connections: u32,
    pub seconds: u32,
    pub script: &'a Path,
}

/// The shared tail of every script: status counts per thread, summed in `done`.
const DONE: &str = r#"
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local codes = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then for k, v in pairs(s) do codes[k] = (codes[k] or 0) + v end end
  end
  local parts = {}
  for k, v in pairs(codes) do table.insert(parts, string.format('"%d":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"codes":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout, table.concat(parts, ",")))
end
"#;

/// `POST /links`, over and over, each request with the next of `tokens`
/// (several users, so that the load stays below each user's cap on pending
/// links, `MAX_PENDING_LINKS`).
pub fn create_link_script(tokens: &[String]) -> String {
    let tokens: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"tokens = {{{list}}}
function init(args) statuses = {{}} sent = 0 end
function request()
  sent = sent + 1
  local headers = {{}}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. tokens[((sent - 1) % #tokens) + 1]
  return wrk.format("POST", "/links", headers, "{{}}")
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
{DONE}"#,
        list = tokens.join(", ")
    )
}

/// Each path of `paths_file` once (thread `i` of `n` takes every n-th line);
/// a thread stops when its share is answered, so no state is used twice
/// except by a request still in flight on another connection at that moment.
pub fn callback_script(paths_file: &Path, threads: u32) -> String {
    format!(
        r#"function init(args)
  statuses = {{}}
  paths = {{}}
  local i = 0
  for line in io.lines("{file}") do
    if i % {threads} == id then table.insert(paths, line) end
    i = i + 1
  end
  sent = 0
  answered = 0
end
function request()
  sent = sent + 1
  return wrk.format("GET", paths[((sent - 1) % #paths) + 1])
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  if answered >= #paths then wrk.thread:stop() end
end
{DONE}"#,
        file = paths_file.display()
    )
}

pub async fn run(spec: &LoadSpec<'_>) -> Result<Value, String> {
    let output = tokio::time::timeout(
        Duration::from_secs(u64::from(spec.seconds) + 60),
        tokio::process::Command::new("wrk")
            .arg(format!("-t{}", spec.threads))
            .arg(format!("-c{}", spec.connections))
            .arg(format!("-d{}s", spec.seconds))
            .arg("--timeout")
            .arg("10s")
            .arg("-s")
            .arg(spec.script)
            .arg(spec.url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| "wrk did not finish in time".to_owned())?
    .map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .ok_or_else(|| {
            format!(
                "wrk printed no result: {stdout} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    serde_json::from_str(line).map_err(|e| format!("wrk result {line:?}: {e}"))
}
