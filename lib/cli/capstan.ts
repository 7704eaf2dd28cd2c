#!/usr/bin/env node
// `capstan` (npx capstan …): Capstan's command line over gulp-capstan. See main.ts.
import { main } from './main.js';

const status = await main(process.argv.slice(2));
// Writes to pipes and files are synchronous on Linux, so nothing printed is lost; exiting now
// also lets a detached VM (run --detach) outlive us without a handle keeping this process.
process.exit(status);
