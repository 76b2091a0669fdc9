// Takes the screenshot of the demo page in docs/ (node web/test/screenshot.mjs [OUT.png]):
// a system prompt, two turns with the bundled model, the statistics line.
import path from 'node:path';

import { startServer } from '../serve.mjs';
import { launchChromium, ROOT } from './helpers.mjs';

const out = process.argv[2] || path.join(ROOT, 'docs', 'web-demo.png');
const server = await startServer({ port: 0, isolation: true });
const browser = await launchChromium();
try {
  const page = await browser.context.newPage();
  await page.goto(server.url + '/demo/');
  await page.waitForFunction(() => document.body.dataset.model === 'ready', null, { timeout: 60000 });
  await page.fill('#system', 'You are a fortune teller. Keep it short.');
  await page.fill('#temperature', '0.7');
  await page.fill('#max-tokens', '64');
  for (const [i, q] of ['Tell me a fortune.', 'And one about computers?'].entries()) {
    await page.fill('#input', q);
    await page.click('#send');
    await page.waitForFunction((k) => Number(document.body.dataset.answers || 0) > k, i, { timeout: 60000 });
  }
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.close();
}
