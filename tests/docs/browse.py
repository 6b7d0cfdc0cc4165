"""Opens a `strata docs` site in headless Chromium (Debian's chromium and chromedriver,
driven by Selenium) and checks what a person would see: the lineage graph with one node
per model and working links, a model page with its columns and runs, search over model
and column names. Saves screenshots. Prints what it measured as one JSON object.

usage: browse.py SITE_DIR SCREENSHOT_DIR [--expect-runs MODEL] [--search TERM=MODEL]
"""

import argparse
import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser():
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(tool):
            sys.exit(f"{tool} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # As root in a sandbox with no network: these keep Chromium from dialling out.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000",
                 f"--user-data-dir={os.path.join(os.environ.get('TMPDIR', '/tmp'), f'strata-chromium-{os.getpid()}')}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("site")
    ap.add_argument("shots")
    ap.add_argument("--expect-runs")
    ap.add_argument("--search", action="append", default=[])
    ap.add_argument("--click", type=int, default=0, help="click only this many nodes, spread out (0: all)")
    args = ap.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    index = "file://" + os.path.abspath(os.path.join(args.site, "index.html"))
    out = {}
    d = browser()
    try:
        d.get(index)
        out["load_ms"] = d.execute_script(
            "var n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;")
        nodes = d.find_elements(By.CSS_SELECTOR, "svg.lineage a.node")
        out["nodes"] = [n.get_attribute("data-model") for n in nodes]
        out["node_health"] = {n.get_attribute("data-model"): n.get_attribute("class").split()[-1] for n in nodes}
        out["edges"] = len(d.find_elements(By.CSS_SELECTOR, "svg.lineage path.edge"))
        out["table_rows"] = len(d.find_elements(By.CSS_SELECTOR, "#models tbody tr"))
        d.save_screenshot(os.path.join(args.shots, "index.png"))
        # Every node links to a page that exists; clicking them opens that model's page.
        hrefs = {n.get_attribute("data-model"): d.execute_script("return arguments[0].getAttribute('href')", n) for n in nodes}
        missing = [m for m, href in hrefs.items() if not os.path.exists(os.path.join(args.site, href))]
        broken = [(m, "no page", "") for m in missing]
        clicked = out["nodes"]
        if args.click and len(clicked) > args.click:
            step = len(clicked) / args.click
            clicked = [clicked[int(i * step)] for i in range(args.click)] + [clicked[-1]]
        out["clicked"] = len(clicked)
        for model in clicked:
            d.get(index)
            d.find_element(By.CSS_SELECTOR, f'svg.lineage a.node[data-model="{model}"]').click()
            h1 = d.find_element(By.TAG_NAME, "h1").text
            if h1 != model:
                broken.append((model, h1, d.current_url))
            if model == args.expect_runs:
                out["model_columns"] = [td.text for td in d.find_elements(By.CSS_SELECTOR, "#columns tbody tr td:first-child")]
                out["model_runs"] = len(d.find_elements(By.CSS_SELECTOR, "#runs tbody tr"))
                out["model_charts"] = len(d.find_elements(By.CSS_SELECTOR, "figure.chart svg"))
                out["model_upstream"] = [a.text for a in d.find_elements(By.CSS_SELECTOR, "section.deps div:first-child a")]
                d.save_screenshot(os.path.join(args.shots, "model.png"))
                # Upstream links work too.
                ups = d.find_elements(By.CSS_SELECTOR, "section.deps div:first-child a")
                if ups:
                    target = ups[0].text
                    ups[0].click()
                    out["upstream_link_opens"] = d.find_element(By.TAG_NAME, "h1").text == target
            if len(broken) > 5:
                break
        out["broken_links"] = broken
        # Search, typed as a person would.
        out["search"] = {}
        for pair in args.search:
            term, _ = pair.split("=", 1)
            d.get(index)
            box = d.find_element(By.ID, "search")
            box.send_keys(term)
            hits = [a.text for a in d.find_elements(By.CSS_SELECTOR, "#results a.hit")]
            visible = [r.get_attribute("data-model") for r in d.find_elements(By.CSS_SELECTOR, "#models tbody tr") if r.is_displayed()]
            out["search"][term] = {"hits": hits, "visible_rows": visible}
            d.save_screenshot(os.path.join(args.shots, f"search-{term}.png"))
    finally:
        d.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
