// The /metrics answer on the API port, made at most once per interval: every scrape within it gets
// the same text (the render in progress, or the last one). The exposition is tens of kilobytes
// built from every collector; unlimited, a scrape flood from one client made the API slow for
// everyone (issue 24 item 2). A Prometheus scrape interval is 10 s or more, so a snapshot of up to
// a second old changes nothing for the scraper.

/** `render`, called at most once per `intervalMs` (0: every call). */
export function snapshotted(render: () => Promise<string>, intervalMs: number): () => Promise<string> {
  let last: { at: number; text: Promise<string> } | undefined;
  return () => {
    const now = performance.now();
    if (last !== undefined && now - last.at < intervalMs) return last.text;
    const text = render();
    last = { at: now, text };
    // A failed render is not kept: the next scrape tries again.
    text.catch(() => {
      if (last?.text === text) last = undefined;
    });
    return text;
  };
}
