// The stream every step is (lib/vinyl/step-stream.ts): order, waiting, backpressure, errors
// naming the file, and one close in every ending.
import test from 'ava';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import Vinyl from 'vinyl';
import { capstanErrorOf, LayoutError } from '../lib/errors.js';
import { stepStream } from '../lib/vinyl/step-stream.js';

const file = (name: string) => new Vinyl({ cwd: '/app', base: '/app', path: `/app/${name}`, contents: Buffer.from(name) });
const names = (files: Vinyl[]) => files.map((f) => f.relative);

async function collect(input: Vinyl[], step: NodeJS.ReadWriteStream): Promise<Vinyl[]> {
  const out: Vinyl[] = [];
  await pipeline(Readable.from(input), step, new Writable({ objectMode: true, write(f: Vinyl, _e, cb) { out.push(f); cb(); } }));
  return out;
}

test('files go on in order, synchronous and waiting ones alike, then what end pushes; close comes once, without an error', async (t) => {
  const closes: Array<Error | null> = [];
  let promises = 0;
  const step = stepStream({
    each(f, push) {
      if (f.relative === 'drop') return;
      if (f.relative !== 'slow') return push(f);
      promises++;
      return delay(20).then(() => push(f));
    },
    async end(push) {
      await delay(5);
      push(file('last'));
    },
    close(error) { closes.push(error); },
  });
  const out = await collect(['a', 'slow', 'drop', 'b'].map(file), step);
  t.deepEqual(names(out), ['a', 'slow', 'b', 'last']);
  t.is(promises, 1);
  await delay(0);
  t.deepEqual(closes, [null]);
});

test('the next file waits for a file that waits; a full output holds back the input', async (t) => {
  const started: string[] = [];
  let inFlight = 0;
  let most = 0;
  const step = stepStream({
    async each(f, push) {
      started.push(f.relative);
      inFlight++;
      most = Math.max(most, inFlight);
      await delay(2);
      inFlight--;
      push(f);
    },
  });
  await collect(Array.from({ length: 20 }, (_, i) => file(`f${i}`)), step);
  t.is(most, 1, 'one file at a time');
  t.is(started.length, 20);

  // Nobody reads the output: the step takes only about its two buffers' worth of input.
  let taken = 0;
  const held = stepStream({ each(f, push) { taken++; push(f); } });
  const source = Readable.from(Array.from({ length: 1000 }, (_, i) => file(`g${i}`)));
  source.pipe(held);
  await delay(50);
  t.true(taken < 100, `took ${taken} of 1000 files with nobody reading`);
  source.destroy();
  held.destroy();
});

test('an error, thrown or rejected, fails the stream as a PluginError naming the file; close gets it; the error waits for close', async (t) => {
  for (const how of ['throw', 'reject'] as const) {
    const order: string[] = [];
    const step = stepStream({
      each(f, push) {
        if (f.relative !== 'bad') return push(f);
        const error = new LayoutError('is bad', { code: 'E_TEST_BAD', hint: 'Make it good.' });
        if (how === 'throw') throw error;
        return Promise.reject(error);
      },
      async close(error) {
        order.push(`close ${capstanErrorOf(error)?.code}`);
        await delay(20);
        order.push('closed');
      },
    });
    step.on('error', () => order.push('error'));
    const error = await t.throwsAsync(collect(['a', 'bad', 'c'].map(file), step), { any: true });
    t.is((error as Error).name, 'Error', how); // gulp's PluginError
    t.is((error as { plugin?: string }).plugin, 'gulp-capstan');
    t.is((error as { fileName?: string }).fileName, '/app/bad');
    t.is(capstanErrorOf(error)?.code, 'E_TEST_BAD');
    await delay(30);
    t.deepEqual(order, ['close E_TEST_BAD', 'closed', 'error'], how);
  }
});

test('destroyed from outside: close at once with the error; a file still waiting settles into nothing; end never runs', async (t) => {
  const closes: Array<Error | null> = [];
  let ended = false;
  let release: () => void = () => {};
  const step = stepStream({
    each() { return new Promise<void>((resolve, reject) => { release = () => reject(new Error('written after the abort')); }); },
    end() { ended = true; },
    close(error) { closes.push(error); },
  });
  const errors: unknown[] = [];
  step.on('error', (e) => errors.push(e));
  const input = new PassThrough({ objectMode: true });
  input.pipe(step);
  input.write(file('a'));
  await delay(10);
  const failure = new Error('upstream failed');
  step.destroy(failure);
  t.deepEqual(closes, [failure], 'close runs inside destroy()');
  release();
  input.end();
  await delay(20);
  t.deepEqual(errors, [failure], 'the late rejection is not reported');
  t.false(ended);
});

test('end errors fail the stream without a file name', async (t) => {
  const step = stepStream({ each(f, push) { push(f); }, end() { throw new LayoutError('nothing to finish', { code: 'E_TEST_END' }); } });
  const error = await t.throwsAsync(collect([file('a')], step), { any: true });
  t.is(capstanErrorOf(error)?.code, 'E_TEST_END');
  t.is((error as { fileName?: string }).fileName, undefined);
});

test('room(): a step sending many files for one input waits for the next step, and stops when destroyed', async (t) => {
  let sent = 0;
  let stopped: unknown;
  const step = stepStream({
    async each(_f, push, room) {
      try {
        for (let i = 0; i < 100; i++) {
          push(file(`m${i}`));
          sent++;
          const full = room();
          if (full) await full;
        }
      } catch (error) {
        stopped = error;
        throw error;
      }
    },
  });
  const until = async (done: () => boolean) => { for (let i = 0; i < 400 && !done(); i++) await delay(5); };
  step.write(file('input'));
  const hwm = step.readableHighWaterMark;
  await until(() => sent >= hwm);
  await delay(30); // were it not held back, it would send on meanwhile
  t.is(sent, hwm, 'held back once the output is full');
  const first = step.read() as Vinyl;
  t.is(first.relative, 'm0');
  await until(() => sent > hwm);
  await delay(30);
  t.is(sent, hwm + 1, 'one taken, one more sent');
  step.destroy();
  await until(() => stopped !== undefined);
  t.true(stopped instanceof Error, 'the waiting step is told the stream is gone');
  t.is(sent, hwm + 1);
});
