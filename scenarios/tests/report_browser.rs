//! Reports rendered in a real browser (headless Chromium): the failing Raft report, the
//! RedLock clock-jump report and a passing run. A probe script added to a copy of each
//! page reports what the browser laid out: the violation's ring and the first message
//! label are there and visible (after the page's own script zoomed in), no element
//! overflows the page, the violation link zooms the causal past, and nothing was logged
//! as an error.
//!
//! Skipped with a message when no Chromium is installed, unless `DSIM_REQUIRE_BROWSER`
//! is set (CI installs Chromium and sets it, so there the test cannot be skipped).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Chromium, or `None` (the test is skipped) where none is installed and
/// `DSIM_REQUIRE_BROWSER` is not set.
fn browser_or_skip() -> Option<PathBuf> {
    let browser = chromium();
    if browser.is_none() {
        assert!(
            std::env::var_os("DSIM_REQUIRE_BROWSER").is_none(),
            "DSIM_REQUIRE_BROWSER is set but no Chromium is installed"
        );
        eprintln!("skipped: no Chromium on PATH (apt-get install chromium to run this test)");
    }
    browser
}

/// Runs before the page: records errors and console errors.
const CATCH: &str = r#"<script>window.dsimErrors = [];
window.addEventListener('error', function (e) { window.dsimErrors.push(String(e.message)); });
(function () { var original = console.error; console.error = function () {
  window.dsimErrors.push(Array.prototype.join.call(arguments, ' ')); original.apply(console, arguments); }; })();
</script>"#;

/// Runs after the page's own script: measures, then writes a JSON result into the page.
const PROBE: &str = r#"<script>(function () {
  var out = { errors: window.dsimErrors, overflow: [], zooms: (window.dsimZooms || []).length };
  function visible(el) {
    if (!el) return false;
    var r = el.getBoundingClientRect(), style = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && style.display !== 'none' && style.visibility !== 'hidden';
  }
  // Inside the plotted area of its diagram (110 to 1210 in the diagram's coordinates).
  function inPlot(el, attr) { var x = +el.getAttribute(attr); return x >= 110 && x <= 1210; }
  var width = document.documentElement.clientWidth;
  out.scrollWidth = document.documentElement.scrollWidth;
  out.width = width;
  Array.prototype.forEach.call(document.body.querySelectorAll('*'), function (el) {
    if (el.ownerSVGElement) return;
    var r = el.getBoundingClientRect();
    if (r.right > width + 1) out.overflow.push(el.tagName + '.' + el.className + ' ' + Math.round(r.right));
  });
  var ring = document.getElementById('violation');
  out.violation = !!ring;
  out.violationVisible = visible(ring) && inPlot(ring, ring.tagName === 'circle' ? 'cx' : 'x1');
  var first = document.querySelector('svg.spacetime');
  if (first && window.dsimZooms && !ring) {
    // A passing run: zoom the diagram to its middle, as a reader would.
    var z = window.dsimZooms[0];
    z.zoomTo((z.from + z.to) / 2);
  }
  out.firstDense = first ? first.classList.contains('dense') : null;
  var label = null;
  if (first) {
    label = Array.prototype.find.call(first.querySelectorAll('text.msglabel'), function (t) { return inPlot(t, 'x'); });
  }
  out.firstLabel = label ? label.textContent : null;
  out.firstLabelVisible = visible(label);
  var link = document.querySelector('a.violation-link');
  if (link) {
    window.dsimZooms[0].show(window.dsimZooms[0].from, window.dsimZooms[0].to);
    link.click();
    out.afterLink = window.dsimZooms[0].label.textContent;
    out.afterLinkDense = first.classList.contains('dense');
  }
  out.marks = document.querySelectorAll('circle.mark').length;
  out.faultRows = document.querySelectorAll('table.faults tr').length;
  var pre = document.createElement('pre');
  pre.id = 'dsim-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();</script>"#;

/// Renders `page` with the probe in headless Chromium and returns the probe's result.
fn probe(browser: &Path, page: &Path) -> Value {
    render_probed(browser, page, PROBE, "1400,1000", 5000)
}

/// Renders a copy of `page` with [`CATCH`] first and `script` last, in a window of
/// `size`, and returns the JSON the script wrote into the page.
fn render_probed(browser: &Path, page: &Path, script: &str, size: &str, budget_ms: u32) -> Value {
    let html = std::fs::read_to_string(page).expect("the page exists");
    let probed =
        html.replacen("<head>", &format!("<head>{CATCH}"), 1).replacen("</body>", &format!("{script}</body>"), 1);
    let copy = page.with_extension("probe.html");
    std::fs::write(&copy, probed).unwrap();
    let output = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--dump-dom"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"])
        .arg(format!("--window-size={size}"))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(format!("file://{}", copy.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom.find("<pre id=\"dsim-probe\">").unwrap_or_else(|| {
        panic!("no probe result in the rendered page; chromium said: {}", String::from_utf8_lossy(&output.stderr))
    });
    let text = &dom[start + "<pre id=\"dsim-probe\">".len()..];
    let text = &text[..text.find("</pre>").expect("the probe's end")];
    let text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("probe result {text}: {e}"))
}

/// Runs after a comparison page: its title, lead sentences and layout.
const COMPARE_PROBE: &str = r#"<script>(function () {
  var width = document.documentElement.clientWidth, out = { errors: window.dsimErrors, overflow: [] };
  out.width = width;
  out.scrollWidth = document.documentElement.scrollWidth;
  out.title = (document.querySelector('h1') || {}).textContent || '';
  out.lead = Array.prototype.map.call(document.querySelectorAll('.lead p'), function (p) { return p.textContent; });
  var first = document.querySelector('.lead p');
  out.leadOnFirstScreen = !!first && first.getBoundingClientRect().bottom <= window.innerHeight;
  Array.prototype.forEach.call(document.body.querySelectorAll('*'), function (el) {
    if (el.ownerSVGElement || el.closest('.scroll table, .scroll svg')) return;
    var r = el.getBoundingClientRect();
    if (r.right > width + 1) out.overflow.push(el.tagName + '.' + el.className + ' ' + Math.round(r.right));
  });
  var pre = document.createElement('pre');
  pre.id = 'dsim-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();</script>"#;

/// Renders a comparison page in a 1,300-pixel window with [`COMPARE_PROBE`].
fn probe_comparison(browser: &Path, page: &Path) -> Value {
    render_probed(browser, page, COMPARE_PROBE, "1300,900", 3000)
}

fn report(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let output =
        Command::new(env!("CARGO_BIN_EXE_dsim")).args(args).arg("--report").arg(&path).output().expect("dsim runs");
    assert!(output.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&output.stderr));
    path
}

fn common(result: &Value, name: &str) {
    assert_eq!(result["errors"], serde_json::json!([]), "{name}: errors in the browser");
    assert_eq!(result["overflow"], serde_json::json!([]), "{name}: elements wider than the page");
    assert!(result["scrollWidth"].as_u64() <= result["width"].as_u64(), "{name}: {result}");
    assert!(result["zooms"].as_u64() >= Some(1), "{name}: the zoom script did not run: {result}");
    assert_eq!(result["firstDense"], false, "{name}: the first diagram still hides its labels: {result}");
    assert!(result["firstLabel"].as_str().is_some_and(|l| !l.is_empty()), "{name}: {result}");
    assert_eq!(result["firstLabelVisible"], true, "{name}: {result}");
}

/// `dsim compare cap`, `locks` and `2pc paxos-commit`: each page's title names its kind,
/// its lead sentences are on the first screen of a 1,300-pixel window, and nothing but the
/// tables' and diagrams' own scroll boxes is wider than the window.
#[test]
fn comparison_pages_render_in_a_real_browser() {
    let Some(browser) = browser_or_skip() else { return };
    let dir = std::env::temp_dir().join(format!("dsim-compare-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&[&str], &str, &str); 3] = [
        (&["cap"], "Key-value stores under a partition", "CP, refusing on the minority side"),
        (&["locks"], "Locks under faults", "Mutual exclusion and liveness held"),
        (&["2pc", "paxos-commit"], "Atomic commitment under faults", "Atomicity held"),
    ];
    for (systems, title, first_lead) in cases {
        let page = dir.join(format!("{}.html", systems[0]));
        let output = Command::new(env!("CARGO_BIN_EXE_dsim"))
            .arg("compare")
            .args(systems)
            .args(["--seeds", "3", "--html"])
            .arg(&page)
            .output()
            .expect("dsim runs");
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        let result = probe_comparison(&browser, &page);
        assert_eq!(result["errors"], serde_json::json!([]), "{title}: errors in the browser");
        assert_eq!(result["overflow"], serde_json::json!([]), "{title}: elements wider than the window");
        assert!(result["scrollWidth"].as_u64() <= result["width"].as_u64(), "{title}: {result}");
        assert!(result["title"].as_str().unwrap().starts_with(title), "{result}");
        let lead = result["lead"].as_array().unwrap();
        assert!((2..=3).contains(&lead.len()), "{title}: {result}");
        assert!(lead[0].as_str().unwrap().starts_with(first_lead), "{title}: {result}");
        assert_eq!(result["leadOnFirstScreen"], true, "{title}: {result}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reports_render_in_a_real_browser() {
    let Some(browser) = browser_or_skip() else { return };
    let dir = std::env::temp_dir().join(format!("dsim-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let raft = report(&dir, "raft.html", &["run", "raft", "--seed", "3", "--variant", "commit-old-term"]);
    let result = probe(&browser, &raft);
    common(&result, "raft");
    assert_eq!(result["violation"], true);
    assert_eq!(result["violationVisible"], true, "{result}");
    // Leader completeness names the entry the new leader lacks: marked in both diagrams.
    assert_eq!(result["marks"], 2, "{result}");
    // The causal past opens zoomed to the votes that elected the leader: the labels read.
    assert!(result["firstLabel"].as_str().unwrap().starts_with("RV t"), "{result}");
    assert_eq!(result["afterLinkDense"], false, "{result}");
    assert!(result["faultRows"].as_u64() > Some(5), "{result}");

    let lock = report(&dir, "lock.html", &["run", "redlock-clock-jump"]);
    let result = probe(&browser, &lock);
    common(&result, "redlock-clock-jump");
    assert_eq!(result["violationVisible"], true, "{result}");
    assert!(result["firstLabel"].as_str().unwrap().starts_with("SET lock NX"), "{result}");

    let pass = report(&dir, "pass.html", &["run", "raft", "--seed", "1"]);
    let result = probe(&browser, &pass);
    common(&result, "raft pass");
    assert_eq!(result["violation"], false);
    let _ = std::fs::remove_dir_all(&dir);
}
