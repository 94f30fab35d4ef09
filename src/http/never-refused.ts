// The routes the request pipeline (pipeline.ts) never refuses nor counts: the probes, /metrics,
// /docs (route config neverShed, collected by app.ts as they are registered).

/**
 * The URLs of routes that are never refused, collected as they are registered: a static route by
 * its path, a parametric one (`/docs/assets/:name`) by the part before its first parameter.
 */
export class NeverRefused {
  readonly #paths = new Set<string>();
  readonly #prefixes: string[] = [];

  add(routeUrl: string): void {
    const param = routeUrl.search(/[:*]/);
    if (param === -1) this.#paths.add(routeUrl);
    else this.#prefixes.push(routeUrl.slice(0, param));
  }

  has(url: string): boolean {
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (this.#paths.has(path)) return true;
    for (const prefix of this.#prefixes) if (path.startsWith(prefix)) return true;
    return false;
  }
}
