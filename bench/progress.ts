// Progress on stderr while a run goes: timestamped lines, a live counter on a terminal, and
// red lines for anything that makes the run not a result.
export class Progress {
  readonly #t0 = Date.now();
  readonly #tty = process.stderr.isTTY === true;
  readonly #color = this.#tty || Boolean(process.env.FORCE_COLOR);
  #pending = false;

  #clock(): string {
    const s = Math.floor((Date.now() - this.#t0) / 1000);
    return `[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}]`;
  }

  #line(text: string): void {
    if (this.#pending) process.stderr.write('\r\x1b[2K');
    this.#pending = false;
    process.stderr.write(`${this.#clock()} ${text}\n`);
  }

  info(text: string): void {
    this.#line(text);
  }

  warn(text: string): void {
    this.#line(this.#color ? `\x1b[33m⚠ ${text}\x1b[0m` : `⚠ WARNING: ${text}`);
  }

  /** A red line: something that makes the run not a result. */
  error(text: string): void {
    this.#line(this.#color ? `\x1b[1;31m✖ ${text}\x1b[0m` : `✖ ERROR: ${text}`);
  }

  /** Live counter for the run in progress (TTY only: a log file gets the summary line). */
  tick(label: string, responses: number, elapsed: number, total: number): void {
    if (!this.#tty) return;
    process.stderr.write(
      `\r\x1b[2K${this.#clock()} ${label}: ${elapsed.toFixed(0)}/${total} s, ${responses.toLocaleString('en-US')} responses (${Math.round(responses / Math.max(elapsed, 0.001)).toLocaleString('en-US')}/s)`,
    );
    this.#pending = true;
  }
}
