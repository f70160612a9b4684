#!/usr/bin/env node
// The convspec command. The compiled CLI lives in dist/ (built by `npm run build`, which `npm ci` runs).
import { main } from '../dist/cli/main.js';

const code = await main(process.argv);
process.exitCode = code;
