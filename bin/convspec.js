#!/usr/bin/env node
// The convspec command. The compiled CLI lives in dist/ (built by `npm run build`, which `npm ci` runs); launch.js
// starts it from its single-file bundle when that is there and up to date.
'use strict';
const { loadMain } = require('./launch.js');

loadMain()
  .then((main) => main(process.argv))
  .then((code) => {
    process.exitCode = code;
  });
