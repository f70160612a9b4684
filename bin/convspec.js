#!/usr/bin/env node
// The convspec command. The compiled CLI lives in dist/ (built by `npm run build`, which `npm ci` runs); launch.js
// starts it from its single-file bundle when that is there and up to date.
import { loadMain } from './launch.js';

const main = await loadMain();
const code = await main(process.argv);
process.exitCode = code;
