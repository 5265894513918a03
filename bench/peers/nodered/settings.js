/**
 * Node-RED settings for bench/nodered_vs_hub.py: headless, local, no prompts, logging to a file.
 *
 * Started by bench/peers/nodered/runner.py as
 *   node node_modules/node-red/red.js --settings settings.js --userDir <tmp> --port <free> flow.json
 * with the flow copied into <tmp> (so the committed flow.json is never rewritten) and these variables:
 *   NR_BENCH_LOG   the log file: one JSON line per log message (level, name, id, msg, ts)
 *   BEDMAT_PORT    the emulator's pty (the serial-port config node reads ${BEDMAT_PORT})
 *   MQTT_PORT      the private Mosquitto's port (the mqtt-broker config node reads ${MQTT_PORT})
 *   HUB_ID, RESIDENT  what the function node writes into each event
 *
 * What differs from a fresh install, and why:
 *   - no adminAuth, editor on 127.0.0.1 only: nothing ever asks for a login; telemetry and the
 *     update check are off, so nothing is fetched from the internet at start;
 *   - mqttReconnectTime 1000 ms (default 5000) and serialReconnectTime 1000 ms (default 15000):
 *     the hub in the same bench retries its broker after at most 1 s (backoff_max_s = 1.0 in
 *     hil/harness/hubproc.py's config), so Node-RED gets the same chance to come back quickly;
 */
const fs = require("fs");

const LEVELS = { 10: "fatal", 20: "error", 30: "warn", 40: "info", 50: "debug", 60: "trace", 98: "audit", 99: "metric" };
const logPath = process.env.NR_BENCH_LOG;

function fileLogger() {
    if (!logPath) {
        return function () {};
    }
    const fd = fs.openSync(logPath, "a");
    return function (msg) {
        const line = {
            ts: new Date(msg.timestamp || Date.now()).toISOString(),
            level: LEVELS[msg.level] || String(msg.level),
            type: msg.type,
            name: msg.name,
            id: msg.id,
            msg: typeof msg.msg === "string" ? msg.msg : String(msg.msg && msg.msg.stack || msg.msg),
        };
        fs.writeSync(fd, JSON.stringify(line) + "\n");
    };
}

module.exports = {
    uiHost: "127.0.0.1",
    uiPort: 1880, // the runner passes --port with a free one
    flowFile: "flow.json",
    flowFilePretty: true,
    credentialSecret: false,

    mqttReconnectTime: 1000,
    serialReconnectTime: 1000,

    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    functionExternalModules: false,
    exportGlobalContextKeys: false,

    logging: {
        console: { level: "off", metrics: false, audit: false },
        file: { level: "info", metrics: false, audit: false, handler: fileLogger },
    },

    editorTheme: { tours: false },
};
