"""Take docs/web-client.png: the browser client's thread view mid-turn, with command output,
a reasoning item, a file diff and an approval waiting.

    .venv/bin/python examples/web_screenshot.py [OUTPUT.png]

Needs playwright (the test extra) and Debian's chromium (.ci/install-chromium.sh).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from web_support import Tab, launch_browser, missing_browser, run_web_server  # noqa: E402

SCRIPT = "\n".join(
    [
        "What is in this directory?",
        "/think Listing the files first, then I will note what I found.",
        "/run ls -1; wc -l setup.cfg",
        "/write NOTES.md Two files: README.md and setup.cfg.",
        "/say Both files are small. One more check:",
        "/run git status --short",
    ]
)


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "web-client.png"
    reason = missing_browser()
    if reason is not None:
        print(f"cannot take the screenshot: {reason}", file=sys.stderr)
        return 1
    from playwright.sync_api import expect

    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "README.md").write_text("# demo\n")
        (Path(work) / "setup.cfg").write_text("[metadata]\nname = demo\n")
        (Path(work) / "NOTES.md").write_text("nothing yet\n")
        with run_web_server(cwd=Path(work)) as server, launch_browser() as browser:
            context = browser.new_context(viewport={"width": 1200, "height": 860})
            page = Tab.open(context, server.url).page
            button = lambda name: page.get_by_role("button", name=name, exact=True)  # noqa: E731
            expect(button("New thread")).to_be_enabled()
            button("New thread").click()
            page.get_by_role("textbox", name="Message", exact=True).fill(SCRIPT)
            button("Send").click()
            button("Approve").click()  # ls
            expect(page.locator('[data-item-type="fileChange"]')).to_be_visible()
            button("Approve").click()  # the write
            commands = page.locator('[data-item-type="commandExecution"]')
            expect(commands).to_have_count(2)
            expect(button("Approve")).to_be_enabled()  # git status: waiting, mid-turn
            page.screenshot(path=str(output))
            context.close()
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
