//! The dashboard page in a real headless Chromium against a real cluster of region nodes: it
//! shows exactly what `GET /v1/counts` says, follows a command sent through the API without a
//! reload, switches locale without touching a number (by mouse, by keyboard, remembered and
//! overridden by `?locale=`), fits a phone's width, shows a stopped region as stale, and falls
//! back to polling. Screenshots land in the target directory (artifacts, not committed).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::support::browser::{Browser, target_dir};
use crate::support::cluster::{Cluster, ClusterOptions};
use crate::support::counts::{Counts, with_every_status};
use crate::support::{AP, EU, US, wait_until};

/// A bound for a failure, not a performance assertion: the page normally follows within a
/// second.
const BOUND: Duration = Duration::from_secs(20);

/// Gathers what the page shows, as text, in one round trip.
const READ_PAGE: &str = r#"
const q = (s) => document.querySelector(s);
const text = (s) => { const n = q(s); return n ? n.textContent.trim() : null; };
const all = (s, f) => Array.from(document.querySelectorAll(s)).map(f);
return {
  state: document.body.dataset.state,
  lang: document.documentElement.lang,
  mode: q('[data-testid="connection"]').dataset.mode,
  mode_text: text('[data-testid="connection-text"]'),
  title: text('[data-testid="title"]'),
  label_total: text('[data-testid="label-total"]'),
  total: text('[data-testid="total"]'),
  active: text('[data-testid="active"]'),
  inactive: text('[data-testid="inactive"]'),
  retired: text('[data-testid="retired"]'),
  status: Object.fromEntries(all('[data-testid="status-list"] > li[data-key]',
    (li) => [li.dataset.key, li.querySelector('.count').textContent])),
  providers: Object.fromEntries(all('[data-testid="providers-body"] > tr[data-key]',
    (tr) => [tr.dataset.key, [tr.querySelector('.total-cell').textContent, tr.querySelector('.active-cell').textContent]])),
  regions: Object.fromEntries(all('[data-testid="regions-body"] > tr[data-key]',
    (tr) => [tr.dataset.key, { available: tr.querySelector('td.num').textContent,
      stale: tr.dataset.stale, badge: tr.querySelector('.badge').textContent }])),
  feed: all('[data-testid="feed"] > li', (li) => ({ model_id: li.dataset.modelId, type: li.dataset.type,
    name: li.querySelector('.model-name').textContent })),
  chart: q('[data-testid="chart"]').dataset.state,
  chart_lines: document.querySelectorAll('[data-testid="chart"] path.line').length,
  announced: text('[data-testid="region-announcer"]'),
  marker: window.__dashboardTestMarker || null,
  overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
};
"#;

/// The numbers of a count response or of the page, comparable with each other.
type Numbers = Counts;

/// The number a text shows ("1,234" in either locale); an error for "…" or nothing.
fn shown(value: &Value, what: &str) -> Result<i64, String> {
    let text = value.as_str().unwrap_or_default();
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .map_err(|_| format!("{what} shows no number: {text:?}"))
}

/// The numbers the page shows.
fn numbers_from_page(page: &Value) -> Result<Numbers, String> {
    let by_status = page["status"]
        .as_object()
        .ok_or("no status list")?
        .iter()
        .map(|(s, n)| Ok((s.clone(), shown(n, s)?)))
        .collect::<Result<_, String>>()?;
    let by_provider = page["providers"]
        .as_object()
        .ok_or("no providers table")?
        .iter()
        .map(|(p, c)| Ok((p.clone(), (shown(&c[0], p)?, shown(&c[1], p)?))))
        .collect::<Result<_, String>>()?;
    let available = page["regions"]
        .as_object()
        .ok_or("no regions table")?
        .iter()
        .map(|(r, row)| Ok((r.clone(), shown(&row["available"], r)?)))
        .collect::<Result<_, String>>()?;
    Ok(Numbers {
        total: shown(&page["total"], "total")?,
        active: shown(&page["active"], "active")?,
        inactive: shown(&page["inactive"], "inactive")?,
        retired: shown(&page["retired"], "retired")?,
        by_status: with_every_status(by_status),
        by_provider,
        available,
    })
}

/// One model the test registers: where, what, and what it makes true.
struct Seed {
    home: &'static str,
    id: &'static str,
    provider: &'static str,
    en: &'static str,
    ko: &'static str,
    active: bool,
    served: bool,
}

const SEEDS: [Seed; 6] = [
    Seed {
        home: EU,
        id: "openai/gpt-dash-1",
        provider: "openai",
        en: "GPT Dash One",
        ko: "지피티 대시 1",
        active: true,
        served: true,
    },
    Seed {
        home: EU,
        id: "openai/gpt-dash-2",
        provider: "openai",
        en: "GPT Dash Two",
        ko: "지피티 대시 2",
        active: true,
        served: false,
    },
    Seed {
        home: US,
        id: "anthropic/claude-dash",
        provider: "anthropic",
        en: "Claude Dash",
        ko: "클로드 대시",
        active: true,
        served: true,
    },
    Seed {
        home: US,
        id: "google/gemini-dash",
        provider: "google",
        en: "Gemini Dash",
        ko: "제미나이 대시",
        active: false,
        served: true,
    },
    Seed {
        home: AP,
        id: "mistral/large-dash",
        provider: "mistral",
        en: "Mistral Dash",
        ko: "미스트랄 대시",
        active: true,
        served: true,
    },
    Seed {
        home: AP,
        id: "meta/llama-dash",
        provider: "meta",
        en: "Llama Dash",
        ko: "라마 대시",
        active: false,
        served: false,
    },
];

/// What the seeds make true (`meta/llama-dash` is also set to degraded).
fn expected_after_seeding() -> Numbers {
    Numbers {
        total: 6,
        active: 4,
        inactive: 2,
        retired: 0,
        by_status: with_every_status(BTreeMap::from([
            ("operational".to_owned(), 5),
            ("degraded".to_owned(), 1),
        ])),
        by_provider: BTreeMap::from([
            ("anthropic".to_owned(), (1, 1)),
            ("google".to_owned(), (1, 0)),
            ("meta".to_owned(), (1, 0)),
            ("mistral".to_owned(), (1, 1)),
            ("openai".to_owned(), (2, 2)),
        ]),
        available: BTreeMap::from([(AP.to_owned(), 1), (EU.to_owned(), 1), (US.to_owned(), 2)]),
    }
}

async fn seed(cluster: &Cluster) {
    for s in &SEEDS {
        let body =
            json!({ "id": s.id, "provider": s.provider, "name": { "en": s.en, "ko": s.ko } });
        cluster
            .command(s.home, Method::POST, "/v1/models", Some(body))
            .await;
        if s.active {
            let path = format!("/v1/models/{}/activate", s.id);
            cluster.command(s.home, Method::POST, &path, None).await;
        }
        if s.served {
            let path = format!("/v1/regions/{}/models/{}", s.home, s.id);
            cluster.command(s.home, Method::PUT, &path, None).await;
        }
    }
    cluster
        .command(
            AP,
            Method::PUT,
            "/v1/models/meta/llama-dash/status",
            Some(json!({ "status": "degraded" })),
        )
        .await;
}

async fn read_page(browser: &Browser) -> Result<Value, String> {
    let page = browser.eval(READ_PAGE).await?;
    if page["state"] == "ready" {
        Ok(page)
    } else {
        Err(format!("page not ready: {page}"))
    }
}

/// The page's numbers once they equal the node's `GET /v1/counts`, within [`BOUND`].
async fn page_matches_api(browser: &Browser, cluster: &Cluster, what: &str) -> (Value, Numbers) {
    browser
        .within(what, BOUND, || async {
            let page = read_page(browser).await?;
            let shown = numbers_from_page(&page)?;
            let api = Counts::from_body(&cluster.counts(EU).await?)?;
            if shown == api {
                Ok((page, shown))
            } else {
                Err(format!("page {shown:?}\n api {api:?}"))
            }
        })
        .await
}

/// Static checks of the served page and assets: types, caching, CSP, and no number baked in.
async fn check_assets(base: &str) {
    let http = reqwest::Client::new();
    let page = http.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    let header_of = |name: header::HeaderName| {
        headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        header_of(header::CONTENT_TYPE).starts_with("text/html"),
        "{headers:?}"
    );
    assert!(
        header_of(header::CONTENT_SECURITY_POLICY).contains("default-src 'self'"),
        "{headers:?}"
    );
    assert_eq!(header_of(header::CACHE_CONTROL), "no-cache");
    let etag = header_of(header::ETAG);
    assert!(!etag.is_empty(), "no ETag: {headers:?}");
    let html = page.text().await.expect("the page's HTML");
    // Before any data arrives the page shows a loading state, never a number.
    let total = html
        .split_once(r#"data-testid="total""#)
        .and_then(|(_, rest)| rest.split_once('>'))
        .and_then(|(_, rest)| rest.split_once('<'))
        .map(|(text, _)| text)
        .expect("a total element in the HTML");
    assert!(
        !total.chars().any(|c| c.is_ascii_digit()),
        "baked-in total: {total:?}"
    );

    let again = http
        .get(format!("{base}/"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("GET / with If-None-Match");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    for (path, content_type) in [
        ("/assets/dashboard.js", "text/javascript"),
        ("/assets/dashboard.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let answer = http.get(format!("{base}{path}")).send().await.expect(path);
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let served = answer
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(served.starts_with(content_type), "{path}: {served}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_the_counts_live_in_a_real_browser() {
    // Each provider's models are registered by the region the seeds give them.
    let options = ClusterOptions {
        extra_toml: format!(
            "[ownership]\nproviders = {{ openai = \"{EU}\", anthropic = \"{US}\", google = \"{US}\", \
             acme = \"{US}\", mistral = \"{AP}\", meta = \"{AP}\" }}\n"
        ),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start_with(&[EU, US, AP], options).await;
    seed(&cluster).await;
    let expected = expected_after_seeding();
    wait_until("every node agrees on the seeded counts", || async {
        for region in [EU, US, AP] {
            let counts = Counts::from_body(&cluster.counts(region).await?)?;
            if counts != expected {
                return Err(format!("{region}: {counts:?}"));
            }
        }
        Ok(())
    })
    .await;
    let base = cluster.node(EU).base.clone();
    check_assets(&base).await;

    let browser = Browser::start().await;
    browser.goto(&format!("{base}/?locale=en")).await;
    let (page, shown) = page_matches_api(&browser, &cluster, "the page shows GET /v1/counts").await;
    assert_eq!(shown, expected, "{page}");
    assert_eq!(page["label_total"], "Total models");
    assert_eq!(page["lang"], "en");

    // Before any new event, the feed shows the node's recent changes (GET /v1/changes), newest
    // first: it does not start empty.
    let base_ref = &base;
    browser
        .within(
            "the feed shows the recent changes at load",
            BOUND,
            || async {
                let page = read_page(&browser).await?;
                let recent: Value = reqwest::get(format!("{base_ref}/v1/changes?recent=30"))
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let newest_first: Vec<(Value, Value)> = recent["changes"]
                    .as_array()
                    .ok_or("no changes array")?
                    .iter()
                    .rev()
                    .map(|c| (c["model_id"].clone(), c["type"].clone()))
                    .collect();
                let shown: Vec<(Value, Value)> = page["feed"]
                    .as_array()
                    .ok_or("no feed")?
                    .iter()
                    .map(|c| (c["model_id"].clone(), c["type"].clone()))
                    .collect();
                if !shown.is_empty() && shown == newest_first {
                    Ok(())
                } else {
                    Err(format!("feed {shown:?}\nrecent {newest_first:?}"))
                }
            },
        )
        .await;

    // History comes from the series endpoint when the node has one; without it the chart
    // says so instead of drawing anything.
    let series = reqwest::get(format!("{base}/v1/counts/series"))
        .await
        .expect("GET /v1/counts/series");
    let no_route = series.status() == StatusCode::NOT_FOUND
        && series
            .json::<Value>()
            .await
            .is_ok_and(|b| b["code"] == "not-found");
    browser
        .within(
            "the history chart reflects the series endpoint",
            BOUND,
            || async {
                let page = read_page(&browser).await?;
                let ok = if no_route {
                    page["chart"] == "unavailable" && page["chart_lines"] == 0
                } else {
                    page["chart"] == "empty" || (page["chart"] == "ok" && page["chart_lines"] == 2)
                };
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "chart {} with {} lines",
                        page["chart"], page["chart_lines"]
                    ))
                }
            },
        )
        .await;

    browser
        .within("connection shown as live (streaming)", BOUND, || async {
            let page = read_page(&browser).await?;
            if page["mode"] == "live" {
                Ok(())
            } else {
                Err(page["mode"].to_string())
            }
        })
        .await;

    // A command through another region's node reaches the page without a reload.
    browser
        .eval("window.__dashboardTestMarker = 'no-reload'; return null;")
        .await
        .expect("setting the marker");
    let body = json!({ "id": "acme/dash-live", "provider": "acme", "name": { "en": "Dash Live", "ko": "대시 라이브" } });
    cluster
        .command(US, Method::POST, "/v1/models", Some(body))
        .await;
    cluster
        .command(US, Method::POST, "/v1/models/acme/dash-live/activate", None)
        .await;
    let (page, before_switch) = browser
        .within("the page shows the new, active model", BOUND, || async {
            let page = read_page(&browser).await?;
            let shown = numbers_from_page(&page)?;
            let done = shown.total == expected.total + 1
                && shown.active == expected.active + 1
                && shown.by_provider.get("acme") == Some(&(1, 1))
                && page["feed"].as_array().is_some_and(|f| {
                    f.iter().any(|c| {
                        c["model_id"] == "acme/dash-live"
                            && c["type"] == "model_activated"
                            && c["name"] == "Dash Live"
                    })
                });
            if done {
                Ok((page, shown))
            } else {
                Err(page.to_string())
            }
        })
        .await;
    assert_eq!(page["marker"], "no-reload", "the page was reloaded");
    assert_eq!(
        before_switch,
        Counts::from_body(&cluster.counts(EU).await.expect("counts")).expect("numbers")
    );
    let feed_name = |page: &Value| {
        page["feed"]
            .as_array()
            .and_then(|f| f.iter().find(|c| c["model_id"] == "acme/dash-live"))
            .map(|c| c["name"].clone())
    };
    assert_eq!(feed_name(&page), Some(json!("Dash Live")), "{page}");

    // Korean: labels and names change, numbers don't.
    browser.click(r#"[data-testid="locale-ko"]"#).await;
    let page = browser
        .within("labels in Korean", BOUND, || async {
            let page = read_page(&browser).await?;
            if page["label_total"] == "전체 모델" {
                Ok(page)
            } else {
                Err(page.to_string())
            }
        })
        .await;
    assert_eq!(page["lang"], "ko");
    assert_eq!(page["title"], "AI-GO 모델 트래커");
    assert_eq!(
        numbers_from_page(&page).expect("numbers"),
        before_switch,
        "a locale changed a number"
    );
    assert_eq!(feed_name(&page), Some(json!("대시 라이브")), "{page}");
    browser
        .screenshot(&target_dir().join("dashboard-screenshot-ko.png"))
        .await;
    // Remembered across a reload; `?locale=` wins over the remembered choice.
    browser.goto(&format!("{base}/")).await;
    let page = page_matches_api(&browser, &cluster, "the reloaded page shows the counts")
        .await
        .0;
    assert_eq!(
        page["label_total"], "전체 모델",
        "the choice was not remembered"
    );
    browser.goto(&format!("{base}/?locale=en")).await;
    let page = page_matches_api(&browser, &cluster, "?locale=en shows the counts")
        .await
        .0;
    assert_eq!(page["label_total"], "Total models");
    // By keyboard: focus a locale button and press Enter.
    browser.press_enter_on(r#"[data-testid="locale-ko"]"#).await;
    browser
        .within("Korean chosen with the keyboard", BOUND, || async {
            let page = read_page(&browser).await?;
            if page["lang"] == "ko" {
                Ok(())
            } else {
                Err(page["lang"].to_string())
            }
        })
        .await;
    browser.press_enter_on(r#"[data-testid="locale-en"]"#).await;
    browser
        .within("English chosen with the keyboard", BOUND, || async {
            let page = read_page(&browser).await?;
            if page["label_total"] == "Total models" {
                Ok(())
            } else {
                Err(page.to_string())
            }
        })
        .await;

    // The node the page streams from goes away: the page says so, reconnects by itself when
    // the node is back, and catches up with what changed meanwhile. (Before a region is
    // stopped: a restarted node learns other regions' states from their next heartbeat.)
    browser
        .eval("window.__dashboardTestMarker = 'no-reload-2'; return null;")
        .await
        .expect("setting the marker");
    cluster.stop(EU).await;
    browser
        .within(
            "the page shows that its node is unreachable",
            BOUND,
            || async {
                let page = browser.eval(READ_PAGE).await?;
                if page["mode"] == "offline" {
                    Ok(())
                } else {
                    Err(page["mode"].to_string())
                }
            },
        )
        .await;
    cluster
        .command(
            US,
            Method::POST,
            "/v1/models/acme/dash-live/deactivate",
            None,
        )
        .await;
    cluster.restart(EU).await;
    browser
        .within(
            "the page is live again with the deactivation",
            BOUND,
            || async {
                let page = read_page(&browser).await?;
                let shown = numbers_from_page(&page)?;
                if page["mode"] == "live"
                    && shown.active == before_switch.active - 1
                    && shown.by_provider.get("acme") == Some(&(1, 0))
                {
                    Ok(())
                } else {
                    Err(format!("{}: {shown:?}", page["mode"]))
                }
            },
        )
        .await;
    let page = read_page(&browser).await.expect("the page");
    assert_eq!(page["marker"], "no-reload-2", "the page was reloaded");

    // A stopped region is shown as stale; the others stay live.
    cluster.stop(AP).await;
    browser
        .within("ap-northeast shown as stale", BOUND, || async {
            let page = read_page(&browser).await?;
            let regions = &page["regions"];
            let ap_stale = regions[AP]["stale"] == "true"
                && regions[AP]["badge"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("Stale"));
            let others_live = [EU, US].iter().all(|r| regions[*r]["stale"] == "false");
            // Screen readers are told once, not every second.
            let announced = page["announced"]
                .as_str()
                .is_some_and(|a| a.starts_with("ap-northeast is stale"));
            if ap_stale && others_live && announced {
                Ok(())
            } else {
                Err(format!("{regions}; announced {}", page["announced"]))
            }
        })
        .await;
    // Tall enough for the whole page in one picture.
    browser.set_window_size(1280, 1700).await;
    browser
        .screenshot(&target_dir().join("dashboard-screenshot.png"))
        .await;

    // A phone's width: nothing wider than the viewport.
    browser.set_window_size(375, 900).await;
    browser
        .within("no horizontal overflow at 375 px", BOUND, || async {
            let page = read_page(&browser).await?;
            if page["overflow"].as_i64() == Some(0) {
                Ok(())
            } else {
                Err(format!("overflow {}", page["overflow"]))
            }
        })
        .await;
    browser
        .screenshot(&target_dir().join("dashboard-screenshot-375.png"))
        .await;
    browser.set_window_size(1280, 1000).await;

    // Polling, as when streaming is unavailable: visible, and still following the counts.
    browser
        .goto(&format!("{base}/?transport=polling&locale=en"))
        .await;
    let page = page_matches_api(&browser, &cluster, "the polling page shows the counts")
        .await
        .0;
    assert_eq!(page["mode"], "polling");
    assert!(
        page["mode_text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Polling")),
        "{page}"
    );
    cluster
        .command(US, Method::POST, "/v1/models/acme/dash-live/activate", None)
        .await;
    browser
        .within("the polling page follows an activation", BOUND, || async {
            let page = read_page(&browser).await?;
            let shown = numbers_from_page(&page)?;
            if shown.active == before_switch.active
                && shown.by_provider.get("acme") == Some(&(1, 1))
            {
                Ok(())
            } else {
                Err(format!("{shown:?}"))
            }
        })
        .await;
    browser.close().await;
}
