"""Screenshots of a Snakemake HTML report as a reader sees it, in headless Chromium: the start
page (workflow description, categories), each category's list, and its first table opened.

Needs Chromium and its driver (Debian: `apt-get install chromium chromium-driver`) and
`pip install selenium`. Usage, after a run and `snakemake --report REPORT.html ...`:

    .venv/bin/python tests/report_screenshots.py REPORT.html OUT_DIR
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path


def screenshots(report: Path, out: Path) -> list[Path]:
    os.environ.setdefault("SE_AVOID_STATS", "true")  # offline: no telemetry, no driver download
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    out.mkdir(parents=True, exist_ok=True)
    shots = []

    def shot(name: str) -> None:
        time.sleep(1.0)  # the report is a script-rendered page
        path = out / f"{len(shots):02d}_{name}.png"
        driver.save_screenshot(str(path))
        shots.append(path)

    try:
        driver.get(report.resolve().as_uri())
        shot("start")
        categories = [a.text for a in driver.find_elements(By.XPATH, "//a[contains(., '. ')]")
                      if a.text[:1].isdigit()]
        for category in categories:
            driver.find_element(By.XPATH, f"//a[normalize-space()='{category}']").click()
            shot(category.split(".")[0] + "_category")
            # each result is a table row: its path, then the eye button that shows it
            rows = driver.find_elements(By.XPATH, "//tr[td[contains(text(), '.html')]]") or \
                driver.find_elements(By.XPATH, "//tr[td[contains(text(), '.png')]]")
            if rows:
                rows[0].find_element(By.XPATH, ".//a[@iconname='eye']").click()
                shot(category.split(".")[0] + "_item")
            driver.get(report.resolve().as_uri())
    finally:
        driver.quit()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    for path in screenshots(args.report, args.out):
        print(path)


if __name__ == "__main__":
    main()
