"""Layout checks run in the page: nothing wider than the screen, touch targets big enough."""

from __future__ import annotations

from playwright.sync_api import Page

# Every rendered control or panel whose right edge lies past the viewport (or left edge before
# it), and the document's own overflow.
_OVERFLOW_JS = """() => {
    const w = document.documentElement.clientWidth;
    const out = [];
    const doc = document.documentElement.scrollWidth;
    if (doc > w) out.push(`document is ${doc}px wide in ${w}px`);
    const sel = 'button, input, select, [role=tab], .panel, .metric, .topbar, .bottom-nav, td.actions';
    for (const el of document.querySelectorAll(sel)) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;
        if (r.right > w + 0.5 || r.left < -0.5) {
            const id = el.dataset.testid || el.className || el.tagName;
            out.push(`${id}: ${Math.round(r.left)}..${Math.round(r.right)} of ${w}`);
        }
    }
    return out;
}"""

# Rendered controls smaller than `min` px in either direction (radios and checkboxes count by
# their label, which is what a finger hits).
_SMALL_TARGETS_JS = """(min) => {
    const out = [];
    const sel = 'button, select, input:not([type=radio]):not([type=checkbox]), [role=tab],'
        + ' .instrument-row, label.radio, label.check';
    for (const el of document.querySelectorAll(sel)) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;
        if (getComputedStyle(el).visibility === 'hidden') continue;
        if (r.height < min - 0.5 || r.width < min - 0.5) {
            const id = el.dataset.testid || el.textContent.trim().slice(0, 20) || el.tagName;
            out.push(`${id}: ${Math.round(r.width)}x${Math.round(r.height)}`);
        }
    }
    return out;
}"""


def overflowing(page: Page) -> list[str]:
    result: list[str] = page.evaluate(_OVERFLOW_JS)
    return result


def small_touch_targets(page: Page, min_px: int = 44) -> list[str]:
    result: list[str] = page.evaluate(_SMALL_TARGETS_JS, min_px)
    return result
