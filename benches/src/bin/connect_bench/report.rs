//! `benches/RESULTS.md`: the machine, the goals and one table per part.

use std::fmt::Write;
use std::time::Duration;

use connect_benches::stats::{median, percentile};
use serde_json::Value;

use crate::{Kind, Results, Settings};

const RSS_GOAL_MIB: f64 = 32.0;
const ZIP_GOAL_BYTES: u64 = 4 * 1024 * 1024;
const OVERHEAD_GOAL_US: f64 = 100.0;
/// Webhook acknowledgement p99 with the sandbox at 50 ms latency.
const WEBHOOK_P99_GOAL_MS: f64 = 300.0;

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into())
}

fn ms2(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn yes(met: bool) -> &'static str {
    if met { "**met**" } else { "**missed**" }
}

fn file_size(path: &std::path::Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

fn bytes(n: Option<u64>) -> String {
    match n {
        Some(n) => format!("{:.2} MiB ({n} B)", n as f64 / 1024.0 / 1024.0),
        None => "–".into(),
    }
}

struct Goal {
    goal: String,
    target: String,
    measured: String,
    met: Option<bool>,
}

pub fn render(settings: &Settings, r: &Results, load_before: &str, elapsed: Duration) -> String {
    let mut goals: Vec<Goal> = Vec::new();
    let mut body = String::new();
    let date = std::env::var("BENCH_DATE").unwrap_or_else(|_| "unknown".into());

    // ---- Package size -------------------------------------------------
    let mut s = String::new();
    let _ = writeln!(s, "## Package size\n");
    let _ = writeln!(
        s,
        "Built by `cargo lambda build --release --output-format zip` (x86_64-unknown-linux-gnu, \
         `-C target-cpu=haswell`, zig as linker) with the workspace's release profile \
         (`opt-level = \"s\"`, fat LTO, one codegen unit, `panic = \"unwind\"`, `strip = true`): \
         the deployed artifacts. *Stripped* is the binary after a further `strip --strip-all` (no \
         change means the profile already stripped it); *zip (deflate 9)* is that binary as \
         `bootstrap` at the highest compression; *cargo-lambda zip* is the deployable package \
         (`target-release/lambda/<binary>/bootstrap.zip`), which the goal is judged on. arm64 \
         cannot be built on this machine.\n"
    );
    let _ = writeln!(
        s,
        "| Binary | As built | Stripped | Zip (deflate 9) | cargo-lambda zip | < 4 MiB |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    let lambda_dir = std::path::PathBuf::from(
        std::env::var("BENCH_LAMBDA_DIR").unwrap_or_else(|_| "target-release/lambda".into()),
    );
    for kind in Kind::ALL {
        let built = file_size(&settings.bin_dir.join(kind.binary()));
        let stripped = file_size(&settings.size_dir.join(kind.binary()));
        let zip = file_size(&settings.size_dir.join(format!("{}.zip", kind.binary())));
        let lambda_zip = file_size(&lambda_dir.join(kind.binary()).join("bootstrap.zip"));
        let judged = lambda_zip.or(zip);
        let met = judged.map(|z| z < ZIP_GOAL_BYTES);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            kind.binary(),
            bytes(built),
            bytes(stripped),
            bytes(zip),
            bytes(lambda_zip),
            if kind == Kind::Hello {
                "(reference)".into()
            } else {
                met.map(yes).unwrap_or("–").to_owned()
            }
        );
        if kind != Kind::Hello {
            goals.push(Goal {
                goal: format!("{} zip", kind.binary()),
                target: "< 4 MiB".into(),
                measured: judged
                    .map(|z| format!("{:.2} MiB", z as f64 / 1048576.0))
                    .unwrap_or("–".into()),
                met,
            });
        }
    }
    s.push('\n');
    body.push_str(&s);

    // ---- Init ---------------------------------------------------------
    if !r.init.is_empty() {
        let mut s = String::new();
        let hello_init: Vec<f64> = r
            .init
            .iter()
            .find(|i| i.kind == Kind::Hello)
            .map(|i| i.lives.iter().filter_map(|l| l.init_ms).collect())
            .unwrap_or_default();
        let hello_median = median(&hello_init);
        let _ = writeln!(s, "## Init time and first invocations\n");
        let _ = writeln!(
            s,
            "{} starts of each binary, round-robin (hello, create-link, callback, revoke, consents, \
             then again) so that the machine's load hits all alike. *Init* runs from just before \
             the process is spawned to its first `GET /2018-06-01/runtime/invocation/next` at the \
             harness's Runtime API emulator; *cold* is the first invocation (event handed out to \
             response posted), *warm* the second. Functions use the production configuration \
             pointed at moto and the sandbox (no added latency), so the invocation times are \
             mostly moto's. The ratio is of medians.\n",
            settings.starts
        );
        let _ = writeln!(
            s,
            "| Binary | Init median (ms) | p10–p90 (ms) | Ratio to hello | Cold invocation median (ms) | Warm invocation median (ms) | Peak RSS after 2 invocations (MiB) | Errors |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for init in &r.init {
            let inits: Vec<f64> = init.lives.iter().filter_map(|l| l.init_ms).collect();
            let cold: Vec<f64> = init
                .lives
                .iter()
                .filter_map(|l| l.invocations.first().map(|i| i.ms))
                .collect();
            let warm: Vec<f64> = init
                .lives
                .iter()
                .filter_map(|l| l.invocations.get(1).map(|i| i.ms))
                .collect();
            let rss: Vec<f64> = init
                .lives
                .iter()
                .filter_map(|l| l.peak_rss_kib.map(mib))
                .collect();
            let errors: usize = init.lives.iter().map(|l| l.errors()).sum();
            let first_error = init.lives.iter().find_map(|l| l.first_error());
            let m = median(&inits);
            let ratio = match (m, hello_median) {
                (Some(m), Some(h)) if h > 0.0 => Some(m / h),
                _ => None,
            };
            let _ = writeln!(
                s,
                "| {} | {} | {}–{} | {} | {} | {} | {} | {}{} |",
                init.kind.binary(),
                ms2(m),
                ms2(percentile(&inits, 10.0)),
                ms2(percentile(&inits, 90.0)),
                ratio.map(|r| format!("{r:.2}")).unwrap_or("–".into()),
                ms2(median(&cold)),
                ms2(median(&warm)),
                ms(median(&rss)),
                errors,
                first_error
                    .map(|e| format!(" (first: {})", truncate(&e, 160)))
                    .unwrap_or_default()
            );
            if init.kind != Kind::Hello {
                goals.push(Goal {
                    goal: format!("{} init", init.kind.binary()),
                    // A figure, not a gate: this machine's run-to-run
                    // noise is as large as the gap.
                    target: "reported against the hello-world".into(),
                    measured: ratio
                        .map(|r| format!("{r:.2}× ({} ms vs {} ms)", ms2(m), ms2(hello_median)))
                        .unwrap_or("–".into()),
                    met: None,
                });
            }
        }
        body.push_str(&s);
    }

    // ---- Memory -------------------------------------------------------
    if !r.memory.is_empty() {
        let mut s = String::new();
        let _ = writeln!(s, "\n## Memory and calls over a container's life\n");
        let _ = writeln!(
            s,
            "One process per binary: a cold start and then {} warm invocations, one after the \
             other (create-link for a user whose customer exists; callback with a fresh genuine \
             state each time; revoke of a fresh authorized consent each time). Peak RSS is \
             `VmHWM` from `/proc/<pid>/status` just before the process is killed. Outbound calls \
             are counted by the harness's proxies in front of moto and the sandbox (no added \
             latency in this part). The invocation times are mostly moto's (one request at a time, \
             in Python); they say little about our code.\n",
            settings.warm
        );
        let _ = writeln!(
            s,
            "| Binary | Invocations | Errors | Peak RSS (MiB) | < 32 MiB | Warm invocation median / p99 (ms) | GetSecretValue over the life | Calls per invocation |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for m in &r.memory {
            let life = &m.life;
            let n = life.invocations.len();
            let warm: Vec<f64> = life.invocations.iter().skip(1).map(|i| i.ms).collect();
            let rss = life.peak_rss_kib.map(mib);
            let met = rss.map(|r| r < RSS_GOAL_MIB);
            let secret = m
                .ops
                .iter()
                .filter(|(k, _)| k.contains("GetSecretValue"))
                .map(|(_, v)| *v)
                .sum::<usize>();
            let per: Vec<String> = m
                .ops
                .iter()
                .map(|(k, v)| format!("{k}: {:.3}", *v as f64 / n.max(1) as f64))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {}{} | {} | {} | {} / {} | {} | {} |",
                m.kind.binary(),
                n,
                life.errors(),
                life.first_error()
                    .map(|e| format!(" (first: {})", truncate(&e, 160)))
                    .unwrap_or_default(),
                ms(rss),
                if m.kind == Kind::Hello {
                    "(reference)"
                } else {
                    met.map(yes).unwrap_or("–")
                },
                ms2(median(&warm)),
                ms2(percentile(&warm, 99.0)),
                secret,
                if per.is_empty() {
                    "none".into()
                } else {
                    per.join("<br>")
                }
            );
            if m.kind != Kind::Hello {
                goals.push(Goal {
                    goal: format!("{} peak RSS", m.kind.binary()),
                    target: "< 32 MiB".into(),
                    measured: format!("{} MiB after {} invocations", ms(rss), n),
                    met,
                });
                // Each secret the route reads is fetched once (at least
                // once: else the figure would prove nothing), never again
                // within the cache's lifetime.
                let reads = m.kind.secrets_read();
                goals.push(Goal {
                    goal: format!("{} secrets fetches", m.kind.binary()),
                    target: format!("1 per secret it reads ({reads}) per container life and TTL"),
                    measured: format!("{secret} GetSecretValue in {n} invocations (TTL 300 s)"),
                    met: Some(secret == reads || n == 0),
                });
            }
        }
        body.push_str(&s);
    }

    // ---- Overhead -----------------------------------------------------
    body.push_str(&overhead_section(settings, &mut goals));

    // ---- Round trips --------------------------------------------------
    if !r.round_trips.is_empty() {
        let mut s = String::new();
        let _ = writeln!(s, "\n## Round trips on the critical path\n");
        let _ = writeln!(
            s,
            "Each function runs behind two counting proxies on 127.0.0.1 (one in front of moto, \
             one in front of the sandbox), each of which holds every call {} ms before forwarding \
             it. A call's interval runs from its arrival at the proxy to its answer. Calls whose \
             intervals overlap were in flight together and count as one round; a call that starts \
             after all earlier ones ended waited for them and starts the next round. *Sequential* \
             is the number of rounds: the fewest network latencies the request can take. {} warm \
             invocations each; the Finexer calls the proxy saw are checked against the sandbox's \
             own request log (`GET /_sandbox/requests`).\n",
            settings.rt_delay.as_millis(),
            settings.rt_warm
        );
        let _ = writeln!(
            s,
            "| Function | Warm request | Sequential (warm) | Goal | Warm rounds, in order | Cold rounds | Warm duration median (ms) | Finexer calls: proxy / sandbox log | GetSecretValue (life) | Errors |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for rt in &r.round_trips {
            let counts: Vec<f64> = rt.warm.iter().map(|w| w.len() as f64).collect();
            let max = counts.iter().cloned().fold(0.0, f64::max) as usize;
            let min = counts.iter().cloned().fold(f64::INFINITY, f64::min);
            let med = median(&counts);
            let goal = match rt.kind {
                Kind::CreateLink | Kind::Callback | Kind::Revoke => Some(2usize),
                _ => None,
            };
            let met = goal.map(|g| max <= g);
            let describe = |rounds: &Vec<Vec<connect_benches::rounds::Call>>| -> String {
                if rounds.is_empty() {
                    return "none".into();
                }
                rounds
                    .iter()
                    .map(|round| {
                        let labels: Vec<String> = round.iter().map(|c| c.label.clone()).collect();
                        if labels.len() > 1 {
                            format!("[{}]", labels.join(" ∥ "))
                        } else {
                            labels.join("")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" → ")
            };
            let typical = rt.warm.last().map(describe).unwrap_or("–".into());
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {}{} |",
                rt.kind.binary(),
                rt.kind.request(),
                match med {
                    Some(m) if min as usize == max => format!("{m:.0}"),
                    Some(m) => format!("{m:.1} (range {min:.0}–{max})"),
                    None => "–".into(),
                },
                match (goal, met) {
                    (Some(g), Some(m)) => format!("≤ {g}: {}", yes(m)),
                    _ => "–".into(),
                },
                typical,
                describe(&rt.cold),
                ms(median(&rt.warm_ms)),
                rt.proxy_finexer_calls,
                rt.sandbox_log_finexer_calls,
                rt.secret_fetches,
                rt.errors,
                rt.first_error
                    .as_ref()
                    .map(|e| format!(" ({})", truncate(e, 160)))
                    .unwrap_or_default()
            );
            if let (Some(g), Some(m)) = (goal, met) {
                goals.push(Goal {
                    goal: format!("{} warm round trips", rt.kind.binary()),
                    target: format!("≤ {g} sequential"),
                    measured: format!("{max}: {typical}"),
                    met: Some(m),
                });
            }
        }
        body.push_str(&s);
    }

    // ---- Throughput ---------------------------------------------------
    if !r.load.is_empty() {
        let mut s = String::new();
        let _ = writeln!(s, "\n## Throughput of the local stack\n");
        let _ = writeln!(
            s,
            "`connect-local` (release build: every handler in one process, DynamoDB and Secrets \
             Manager on a moto of its own, the Finexer sandbox in-process with \
             `SANDBOX_LATENCY_MS={}`) under \
             `wrk -t{} -c{} -d{}s --timeout 10s` on loopback. create-link: `POST /links` for one \
             user whose customer exists. callback: each consent that load created, approved at \
             the sandbox, called back once with its genuine state (the run ends when they are \
             used up or the time is over). Errors are socket errors, timeouts and HTTP statuses \
             above 399; the status column counts every answer.\n",
            settings.load_latency_ms,
            settings.load_threads,
            settings.load_connections,
            settings.load_seconds
        );
        let _ = writeln!(
            s,
            "| Route | Requests | Time (s) | Requests/s | p50 (ms) | p90 (ms) | p99 (ms) | Max (ms) | Errors | Statuses |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for l in &r.load {
            match &l.result {
                Ok(v) => {
                    let n = v["requests"].as_f64().unwrap_or(0.0);
                    let secs = v["duration_us"].as_f64().unwrap_or(0.0) / 1e6;
                    let errors: u64 = ["connect", "read", "write", "status", "timeout"]
                        .iter()
                        .map(|k| v[*k].as_u64().unwrap_or(0))
                        .sum();
                    let detail: Vec<String> = ["connect", "read", "write", "status", "timeout"]
                        .iter()
                        .filter(|k| v[**k].as_u64().unwrap_or(0) > 0)
                        .map(|k| format!("{k} {}", v[*k]))
                        .collect();
                    let codes = v["codes"]
                        .as_object()
                        .map(|o| {
                            o.iter()
                                .map(|(k, v)| format!("{k}: {v}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    let us = |k: &str| v[k].as_f64().map(|x| x / 1000.0);
                    let _ = writeln!(
                        s,
                        "| {}{} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {}{} | {} |",
                        l.name,
                        l.prepared
                            .map(|p| format!(" ({p} states prepared)"))
                            .unwrap_or_default(),
                        n,
                        secs,
                        if secs > 0.0 { n / secs } else { 0.0 },
                        ms(us("p50_us")),
                        ms(us("p90_us")),
                        ms(us("p99_us")),
                        ms(us("max_us")),
                        errors,
                        if detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", detail.join(", "))
                        },
                        codes
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        s,
                        "| {} | failed: {} | | | | | | | | |",
                        l.name,
                        truncate(e, 200)
                    );
                }
            }
        }
        body.push_str(&s);
    }

    // ---- Webhooks and the reconciler -----------------------------------
    if let Some(w) = &r.webhooks {
        body.push_str(&webhook_section(settings, w, &mut goals));
    }

    // ---- Assemble -----------------------------------------------------
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmark results\n");
    let _ = writeln!(
        out,
        "Written by `scripts/bench.sh` (benches/README.md explains each part). Do not edit by hand: \
         run the command again.\n"
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Date (UTC) | {date} |");
    let _ = writeln!(out, "| Commit | {} |", settings.commit);
    let _ = writeln!(out, "| CPU | {} |", cpu_model());
    let _ = writeln!(
        out,
        "| Cores (`nproc`) | {} |",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let _ = writeln!(out, "| Memory | {} |", mem_total());
    let _ = writeln!(out, "| Kernel | Linux {} |", kernel());
    let _ = writeln!(out, "| Rust | {} |", settings.rustc);
    let _ = writeln!(
        out,
        "| Load average (1/5/15 min) | {load_before} at the start, {} at the end |",
        loadavg()
    );
    let _ = writeln!(out, "| Harness run time | {:.0} s |", elapsed.as_secs_f64());
    let _ = writeln!(out, "| Commands | {} |", settings.commands);
    for note in &r.notes {
        let _ = writeln!(out, "\n> {note}");
    }
    if let Some(cold) = &r.cold {
        let (section, cold_goals) = crate::cold::section(cold);
        body.push('\n');
        body.push_str(&section);
        goals.extend(
            cold_goals
                .into_iter()
                .map(|(goal, target, measured, met)| Goal {
                    goal,
                    target,
                    measured,
                    met,
                }),
        );
    }
    let _ = writeln!(out, "\n## Goals\n");
    let _ = writeln!(out, "| Goal | Target | Measured | Verdict |");
    let _ = writeln!(out, "|---|---|---|---|");
    for g in &goals {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            g.goal,
            g.target,
            g.measured,
            match (g.met, g.measured.as_str()) {
                (Some(met), _) => yes(met),
                (None, "–") => "not measured",
                (None, _) => "a figure, not a goal",
            }
        );
    }
    out.push('\n');
    out.push_str(&body);
    // Measured by hand with other builds (see that file), kept across runs.
    if let Ok(extra) = std::fs::read_to_string("benches/RESULTS-panic.md") {
        out.push('\n');
        out.push_str(&extra);
    }
    out
}

fn overhead_section(settings: &Settings, goals: &mut Vec<Goal>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Request overhead (criterion)\n");
    let Some(path) = &settings.overhead_json else {
        let _ = writeln!(s, "Not run (BENCH_OVERHEAD_JSON not set).");
        return s;
    };
    let parsed: Option<Value> = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(v) = parsed else {
        let _ = writeln!(s, "No results at {}.", path.display());
        return s;
    };
    if let Some(about) = v["about"].as_str() {
        let _ = writeln!(s, "{about}\n");
    }
    let _ = writeln!(
        s,
        "| Benchmark | What it runs | CPU time median (µs) [95% CI] | Wall time median (µs) [95% CI] | Goal |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let fmt = |e: &Value| -> String {
        match e["median_ns"].as_f64() {
            Some(m) => format!(
                "{:.2} [{:.2}–{:.2}]",
                m / 1000.0,
                e["low_ns"].as_f64().unwrap_or(m) / 1000.0,
                e["high_ns"].as_f64().unwrap_or(m) / 1000.0
            ),
            None => "–".into(),
        }
    };
    for b in v["benches"].as_array().cloned().unwrap_or_default() {
        let cpu = fmt(&b["cpu"]);
        let wall = fmt(&b["wall"]);
        let goal = b["goal"].as_bool().unwrap_or(false);
        let cpu_us = b["cpu"]["median_ns"].as_f64().map(|n| n / 1000.0);
        let met = cpu_us.map(|u| u < OVERHEAD_GOAL_US);
        let name = b["name"].as_str().unwrap_or_default();
        let _ = writeln!(
            s,
            "| `{name}` | {} | {cpu} | {wall} | {} |",
            b["what"].as_str().unwrap_or_default(),
            if goal {
                format!("< 100 µs: {}", met.map(yes).unwrap_or("–"))
            } else {
                String::new()
            }
        );
        if goal {
            goals.push(Goal {
                goal: format!("{name} own overhead"),
                target: "< 100 µs median".into(),
                measured: cpu_us
                    .map(|u| format!("{u:.1} µs CPU per request"))
                    .unwrap_or("–".into()),
                met,
            });
        }
    }
    s
}

fn webhook_section(
    settings: &Settings,
    w: &crate::webhooks::WebhookResults,
    goals: &mut Vec<Goal>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Webhook acknowledgement and reconciler throughput\n"
    );
    let _ = writeln!(
        s,
        "`connect-local` as in the throughput part (its sandbox at `SANDBOX_LATENCY_MS={}`, \
         moto one request at a time, `LOCAL_RECONCILE_SECONDS=0` so that only these runs \
         reconcile), before the wrk load. {} consents created through `POST /links`, {} per \
         user ({:.1} s, 16 at a time), all pending at the sandbox.\n",
        settings.load_latency_ms,
        w.created,
        crate::webhooks::LINKS_PER_USER,
        w.create_s
    );
    for note in &w.notes {
        let _ = writeln!(s, "> {}\n", truncate(note, 300));
    }
    if !w.rounds.is_empty() {
        let _ = writeln!(
            s,
            "**Webhook acknowledgement**: one `consent.canceled` event per consent, each with \
             its own event id, signed as Finexer signs (`fx-signature: t=…;s=…` under the local \
             secret, made just before sending) and POSTed to `/webhooks/finexer`, {} at a time \
             from the harness over keep-alive connections. The time runs from sending the \
             request to the end of the answer. A first delivery reads the record, records the \
             event id (conditional put), GETs the consent from the sandbox (still pending \
             there: nothing else to write) and answers 200; a redelivery reads the record, finds \
             the id recorded and answers 200 without calling Finexer.\n",
            settings.webhook_concurrency
        );
        let _ = writeln!(
            s,
            "| Delivery | Events | Concurrency | Events/s | p50 (ms) | p90 (ms) | p99 (ms) | Max (ms) | Not 2xx | Statuses |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for round in &w.rounds {
            let n = round.ms.len();
            let max = round.ms.iter().cloned().fold(f64::NAN, f64::max);
            let statuses = round
                .statuses
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {}{} | {} |",
                round.name,
                n,
                round.concurrency,
                if round.wall_s > 0.0 {
                    n as f64 / round.wall_s
                } else {
                    0.0
                },
                ms(percentile(&round.ms, 50.0)),
                ms(percentile(&round.ms, 90.0)),
                ms(percentile(&round.ms, 99.0)),
                ms((n > 0).then_some(max)),
                round.failures(),
                round
                    .first_error
                    .as_ref()
                    .map(|e| format!(" (first: {})", truncate(e, 160)))
                    .unwrap_or_default(),
                if statuses.is_empty() {
                    "none".into()
                } else {
                    statuses
                }
            );
            let p99 = percentile(&round.ms, 99.0);
            goals.push(Goal {
                goal: format!("webhook acknowledgement, {}", round.name),
                target: format!(
                    "p99 < {WEBHOOK_P99_GOAL_MS:.0} ms (sandbox {} ms), every answer 2xx",
                    settings.load_latency_ms
                ),
                measured: format!(
                    "p50 {} ms, p99 {} ms, {} of {n} not 2xx",
                    ms(percentile(&round.ms, 50.0)),
                    ms(p99),
                    round.failures()
                ),
                met: p99.map(|p| p < WEBHOOK_P99_GOAL_MS && round.failures() == 0 && n > 0),
            });
        }
        s.push('\n');
    }
    if let Some(rec) = &w.reconcile {
        let _ = writeln!(
            s,
            "**Reconciler throughput**: `POST /local/reconcile` with `{{\"at\": \"{}\"}}` (901 s \
             after the consents were created, past the state's 900 s lifetime, so every one of \
             the {} pending records is due), repeated while a run ends out of time, within the \
             stack's 28 s invocation limit. Each record is claimed (conditional write), GET from \
             the sandbox (still pending) and released with its next look (conditional write), 8 \
             at a time. *Records/s* is processed records over the runs' summed wall time (request \
             to report).\n",
            rec.at, rec.created
        );
        let _ = writeln!(
            s,
            "| Run | Due | Processed | Changed | Failed | Skipped | Out of time | Wall (s) | Records/s |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for (n, (report, wall)) in rec.runs.iter().enumerate() {
            let processed = report["processed"].as_u64().unwrap_or(0);
            let _ = writeln!(
                s,
                "| {} | {} | {processed} | {} | {} | {} | {} | {wall:.2} | {:.1} |",
                n + 1,
                report["due"],
                report["changed"],
                report["failed"],
                report["skipped"],
                report["out_of_time"],
                if *wall > 0.0 {
                    processed as f64 / wall
                } else {
                    0.0
                }
            );
        }
        let _ = writeln!(
            s,
            "| all | | {} | {} | {} | {} | | {:.2} | **{}** |",
            rec.total("processed"),
            rec.total("changed"),
            rec.total("failed"),
            rec.total("skipped"),
            rec.wall_s(),
            rec.per_second()
                .map(|r| format!("{r:.1}"))
                .unwrap_or("–".into())
        );
        goals.push(Goal {
            goal: "reconciler throughput".into(),
            target: format!(
                "reported, no record failed (sandbox {} ms)",
                settings.load_latency_ms
            ),
            measured: format!(
                "{} records/s ({} records in {:.1} s, {} failed)",
                rec.per_second()
                    .map(|r| format!("{r:.1}"))
                    .unwrap_or("–".into()),
                rec.total("processed"),
                rec.wall_s(),
                rec.total("failed")
            ),
            met: Some(rec.total("processed") > 0 && rec.total("failed") == 0),
        });
    }
    s
}

fn truncate(text: &str, max: usize) -> String {
    let flat = text.replace(['\n', '|'], " ");
    if flat.chars().count() <= max {
        return flat;
    }
    flat.chars().take(max).collect::<String>() + "…"
}
