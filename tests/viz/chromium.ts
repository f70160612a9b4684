/**
 * Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands on fd 3,
 * replies and events on fd 4, each message JSON followed by a NUL byte), with no npm dependency.
 *
 * Why the protocol and not `--enable-logging=stderr`: Chromium's log prints every console message as
 * `INFO:CONSOLE`, whatever its level, and never prints failed resource loads; the protocol reports
 * `Runtime.consoleAPICalled` with its type, `Runtime.exceptionThrown`, and `Log.entryAdded` (network failures,
 * blocked requests, CSP violations) with their levels. A page "opens without console errors" when none of these
 * reports an error.
 *
 * The screenshot covers the whole page (`captureBeyondViewport`), at the given width.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';

export interface PageReport {
  /** Console messages, exceptions and log entries at level error. */
  readonly errors: string[];
  /** Every console message and log entry, "level: text". */
  readonly messages: string[];
  readonly screenshot: Buffer;
  /** Full page height in CSS pixels. */
  readonly height: number;
}

/** The Chromium binary, or undefined when none is installed. */
export function findChromium(): string | undefined {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  }
  return undefined;
}

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export async function renderPage(file: string, options: { width?: number; timeoutMs?: number } = {}): Promise<PageReport> {
  const binary = findChromium();
  if (!binary) throw new Error('chromium is not installed (Debian: apt-get install chromium)');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-chromium-'));
  const width = options.width ?? 1200;
  const child = spawn(
    binary,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--hide-scrollbars',
      `--user-data-dir=${profile}`,
      `--window-size=${width},900`,
      '--remote-debugging-pipe',
    ],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
  );
  const input = child.stdio[3] as Writable;
  const output = child.stdio[4] as Readable;
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const pending = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void }>();
  const events: Message[] = [];
  const waiters: Array<{ test: (m: Message) => boolean; resolve: (m: Message) => void }> = [];
  let buffer = '';
  output.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let end: number;
    while ((end = buffer.indexOf('\0')) >= 0) {
      const message = JSON.parse(buffer.slice(0, end)) as Message;
      buffer = buffer.slice(end + 1);
      if (message.id !== undefined && pending.has(message.id)) {
        const handler = pending.get(message.id)!;
        pending.delete(message.id);
        if (message.error) handler.reject(new Error(message.error.message));
        else handler.resolve(message);
      } else {
        events.push(message);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i]!.test(message)) {
            waiters[i]!.resolve(message);
            waiters.splice(i, 1);
          }
        }
      }
    }
  });
  let nextId = 1;
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Message> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      input.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  const waitFor = (test: (m: Message) => boolean): Promise<Message> => {
    const seen = events.find(test);
    return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ test, resolve }));
  };
  const timeout = options.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`chromium did not finish within ${timeout} ms\n${stderr.slice(-2000)}`)), timeout);
  });
  const exited = new Promise<never>((_, reject) => child.on('exit', (code) => reject(new Error(`chromium exited (${code}) early\n${stderr.slice(-2000)}`))));
  // whichever of these loses the race must not surface as an unhandled rejection
  deadline.catch(() => undefined);
  exited.catch(() => undefined);
  try {
    return await Promise.race([
      deadline,
      exited,
      (async (): Promise<PageReport> => {
        const target = await send('Target.createTarget', { url: 'about:blank' });
        const attached = await send('Target.attachToTarget', { targetId: target.result!['targetId'], flatten: true });
        const session = attached.result!['sessionId'] as string;
        await send('Runtime.enable', {}, session);
        await send('Log.enable', {}, session);
        await send('Page.enable', {}, session);
        await send('Emulation.setDeviceMetricsOverride', { width, height: 900, deviceScaleFactor: 1, mobile: false }, session);
        const loaded = waitFor((m) => m.method === 'Page.loadEventFired' && m.sessionId === session);
        await send('Page.navigate', { url: pathToFileURL(path.resolve(file)).href }, session);
        await loaded;
        // let late console messages and resource errors arrive
        await new Promise((resolve) => setTimeout(resolve, 300));
        const metrics = await send('Page.getLayoutMetrics', {}, session);
        const content = (metrics.result!['cssContentSize'] ?? metrics.result!['contentSize']) as { width: number; height: number };
        const shot = await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true, clip: { x: 0, y: 0, width: Math.max(width, Math.ceil(content.width)), height: Math.ceil(content.height), scale: 1 } }, session);
        const errors: string[] = [];
        const messages: string[] = [];
        for (const event of events) {
          if (event.method === 'Runtime.consoleAPICalled') {
            const type = event.params!['type'] as string;
            const text = ((event.params!['args'] as Array<{ value?: unknown; description?: string }>) ?? []).map((a) => String(a.value ?? a.description ?? '')).join(' ');
            messages.push(`${type}: ${text}`);
            if (type === 'error' || type === 'assert') errors.push(`console.${type}: ${text}`);
          } else if (event.method === 'Runtime.exceptionThrown') {
            const details = event.params!['exceptionDetails'] as { text: string; exception?: { description?: string } };
            const text = `${details.text} ${details.exception?.description ?? ''}`.trim();
            messages.push(`exception: ${text}`);
            errors.push(`exception: ${text}`);
          } else if (event.method === 'Log.entryAdded') {
            const entry = event.params!['entry'] as { level: string; text: string; url?: string };
            messages.push(`${entry.level}: ${entry.text}${entry.url ? ` (${entry.url})` : ''}`);
            if (entry.level === 'error') errors.push(`${entry.text}${entry.url ? ` (${entry.url})` : ''}`);
          }
        }
        return { errors, messages, screenshot: Buffer.from(shot.result!['data'] as string, 'base64'), height: Math.ceil(content.height) };
      })(),
    ]);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    }
    // helper processes may still be writing into the profile for a moment
    try {
      fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    } catch {
      // a left-over temporary profile is harmless
    }
  }
}
