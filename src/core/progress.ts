/** Where long operations report bytes moved. The CLI renders it (bar on a TTY, lines in CI). */
export interface Progress {
  start(label: string, totalBytes: number): void;
  advance(bytes: number): void;
  finish(): void;
}

export const silentProgress: Progress = {
  start() {},
  advance() {},
  finish() {},
};
