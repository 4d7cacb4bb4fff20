// A real AT Protocol server for the Bluesky reply tests: Bluesky's reference PDS
// (@atproto/pds) with an in-memory PLC directory (@did-plc/server), in one Node process,
// as @atproto/dev-env's TestNetworkNoAppView assembles them, but without the AppView,
// Ozone and PostgreSQL that dev-env also pulls in.
//
// Usage: node start.js PDS_PORT PLC_PORT DATA_DIR, with NODE_PATH naming the node_modules
// that scripts/services installed from this folder's package-lock.json. Both listen on
// loopback; when they answer, one JSON line goes to stdout:
//   {"pds": "http://localhost:PORT", "plc": "http://localhost:PORT"}
// The accounts and repositories live in DATA_DIR (SQLite), the DIDs in memory.
// SIGTERM or SIGINT stops both.
'use strict'

const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')

// The PDS and the PLC server call app.listen(port), which binds every interface: a test
// server is for this machine only, so a listen by port alone binds loopback.
const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') {
    args.splice(1, 0, '127.0.0.1')
  }
  return listen.apply(this, args)
}

const { Secp256k1Keypair } = require('@atproto/crypto')
const pds = require('@atproto/pds')
const plc = require('@did-plc/server')

async function main() {
  const [port, plcPort] = process.argv.slice(2, 4).map(Number)
  const data = process.argv[4]
  if (!port || !plcPort || !data) throw new Error('usage: node start.js PDS_PORT PLC_PORT DATA_DIR')
  const plcServer = plc.PlcServer.create({ db: plc.Database.mock(), port: plcPort })
  await plcServer.start()
  const plcUrl = `http://localhost:${plcPort}`

  fs.mkdirSync(data, { recursive: true })
  const rotationKey = await Secp256k1Keypair.create({ exportable: true })
  const env = {
    devMode: true,
    port,
    hostname: 'localhost',
    dataDirectory: data,
    blobstoreDiskLocation: path.join(data, 'blobs'),
    didPlcUrl: plcUrl,
    recoveryDidKey: (await Secp256k1Keypair.create()).did(),
    plcRotationKeyK256PrivateKeyHex: Buffer.from(await rotationKey.export()).toString('hex'),
    adminPassword: 'admin-pass',
    jwtSecret: 'jwt-secret',
    serviceHandleDomains: ['.test'],
    inviteRequired: false,
    disableSsrfProtection: true,
    // No AppView and no moderation service: app.bsky reads are not served, as on a bare PDS.
    bskyAppViewUrl: 'https://appview.invalid',
    bskyAppViewDid: 'did:example:invalid',
    modServiceUrl: 'https://moderator.invalid',
    modServiceDid: 'did:example:invalid',
  }
  const server = await pds.PDS.create(pds.envToCfg(env), pds.envToSecrets(env))
  await server.start()

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    try {
      await server.destroy()
      await plcServer.destroy()
    } finally {
      process.exit(0)
    }
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)

  process.stdout.write(JSON.stringify({ pds: `http://localhost:${port}`, plc: plcUrl }) + '\n')
}

main().catch((err) => {
  process.stderr.write(`test PDS failed to start: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
