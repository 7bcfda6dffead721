// The official Node SDK's side of bench/run.lua (npm `openai`, installed by run.lua under
// build/npm). Same cases and output as bench/limit.c: one line of key=value figures.
//
//   node node_sdk.mjs retrieve BASE ID N | list BASE | startup
// BASE is the API's base URL (ending in /v1). Each request is awaited before the next.
const [mode, base, id, n] = process.argv.slice(2);
const sdkPath = process.env.OPENAI_SDK_PATH;

const t0 = performance.now();
const { default: OpenAI } = await import(sdkPath);
const t1 = performance.now();
const client = new OpenAI({ apiKey: "sk-bench", baseURL: base || "http://127.0.0.1:9/v1", maxRetries: 0 });
const t2 = performance.now();

function emit(figures) {
  figures.hwm_kb = Math.round(process.resourceUsage().maxRSS);
  console.log(Object.keys(figures).sort().map((k) => `${k}=${figures[k]}`).join(" "));
}

if (mode === "startup") {
  emit({ import_ms: (t1 - t0).toFixed(3), new_ms: (t2 - t1).toFixed(3), total_ms: (t2 - t0).toFixed(3) });
} else if (mode === "retrieve") {
  const start = performance.now();
  for (let i = 0; i < Number(n); i++) {
    const video = await client.videos.retrieve(id);
    if (!video.id) throw new Error("no id");
  }
  emit({ seconds: ((performance.now() - start) / 1000).toFixed(6), count: Number(n) });
} else if (mode === "list") {
  const start = performance.now();
  let count = 0;
  for await (const video of client.videos.list({ limit: 100 })) {
    if (!video.id) throw new Error("no id");
    count++;
  }
  emit({ seconds: ((performance.now() - start) / 1000).toFixed(6), count });
} else {
  throw new Error(`unknown case ${mode}`);
}
