// A js-libp2p peer driven line by line by tests/interop (pytest): an independent libp2p stack
// that checks a Python DMS host from the outside.
//
// Start: node js_peer.mjs '<config JSON>'
//   config: {"seed": hex (32-byte Ed25519 seed), "security": ["noise"|"tls", ...],
//            "inboxes": ["<inbox>", ...], "dht": "/nunet/kad/1.0.0"}
// It prints {"event":"ready","id","addrs"} once listening on 127.0.0.1, then reads one JSON
// command per stdin line ({"id": n, "op": ..., ...}) and answers {"id": n, "ok": true, ...} or
// {"id": n, "ok": false, "error": "..."}. Unprompted events are printed as {"event": ...}:
//   inbox   - a Go-style frame arrived on actor/<inbox>/messages/0.0.1 (body base64)
//   message - a gossipsub message on a subscribed topic (data base64)
// Commands: dial, identify, ping, subscribe, topicPeers, findPeer, send, stop.
// Nothing here sleeps for a fixed time: every wait is bounded by an AbortSignal timeout.

import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { tls } from '@libp2p/tls'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { createInterface } from 'node:readline'

// Node 20 lacks Promise.withResolvers (Node 22 has it); it-queue, pulled in by libp2p 2.x,
// calls it at run time only, so defining it before createLibp2p is enough.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const config = JSON.parse(process.argv[2] ?? '{}')
const TIMEOUT = 15000

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function hex (s) {
  return Uint8Array.from(Buffer.from(s, 'hex'))
}

const encrypters = { noise: () => noise(), tls: () => tls() }
const privateKey = await generateKeyPairFromSeed('Ed25519', hex(config.seed))

const node = await createLibp2p({
  privateKey,
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: (config.security ?? ['noise']).map((name) => encrypters[name]()),
  streamMuxers: [yamux()],
  // The tests ping explicitly; the monitor's own pings would only race them.
  connectionMonitor: { enabled: false },
  services: {
    identify: identify(),
    // Several pings may be in flight (ours, and any the connection monitor sends).
    ping: ping({ maxOutboundStreams: 8 }),
    dht: kadDHT({
      protocol: config.dht ?? '/nunet/kad/1.0.0',
      clientMode: true,
      // Loopback addresses are all the test has; the default mapper drops private ones.
      peerInfoMapper: passthroughMapper
    }),
    pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false })
  }
})

async function readAll (stream) {
  const chunks = []
  for await (const chunk of stream.source) {
    chunks.push(Buffer.from(chunk.subarray()))
  }
  return Buffer.concat(chunks)
}

for (const inbox of config.inboxes ?? []) {
  const protocol = `actor/${inbox}/messages/0.0.1`
  await node.handle(protocol, async ({ stream, connection }) => {
    try {
      const data = await readAll(stream)
      const length = data.length >= 8 ? Number(data.readBigUInt64LE(0)) : -1
      emit({
        event: 'inbox',
        protocol,
        from: connection.remotePeer.toString(),
        declared: length,
        body: data.subarray(8).toString('base64')
      })
      await stream.close()
    } catch (err) {
      emit({ event: 'inbox_error', protocol, error: String(err) })
      stream.abort(err)
    }
  })
}

node.services.pubsub.addEventListener('message', (evt) => {
  const msg = evt.detail
  emit({
    event: 'message',
    topic: msg.topic,
    from: msg.type === 'signed' ? msg.from.toString() : null,
    signed: msg.type === 'signed',
    data: Buffer.from(msg.data).toString('base64')
  })
})

function connectionTo (peer) {
  const conns = node.getConnections(peerIdFromString(peer))
  if (conns.length === 0) throw new Error(`not connected to ${peer}`)
  return conns[0]
}

function peerInfo (p) {
  return { id: p.id.toString(), addrs: (p.multiaddrs ?? []).map((a) => a.toString()) }
}

const ops = {
  async dial ({ addr }) {
    const conn = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(TIMEOUT) })
    return { peer: conn.remotePeer.toString(), encryption: conn.encryption, multiplexer: conn.multiplexer }
  },
  async identify ({ peer }) {
    // js runs its own identify on connect and allows one outbound identify stream at a time:
    // when ours races it, wait for that one to finish and ask again.
    const signal = AbortSignal.timeout(TIMEOUT)
    let result
    for (;;) {
      try {
        result = await node.services.identify.identify(connectionTo(peer), { signal })
        break
      } catch (err) {
        if (err.name !== 'TooManyOutboundProtocolStreamsError' || signal.aborted) throw err
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    return {
      peer: result.peerId.toString(),
      protocols: result.protocols,
      listenAddrs: result.listenAddrs.map((a) => a.toString()),
      agentVersion: result.agentVersion ?? null
    }
  },
  async ping ({ peer }) {
    return { rtt: await node.services.ping.ping(peerIdFromString(peer), { signal: AbortSignal.timeout(TIMEOUT) }) }
  },
  async subscribe ({ topic }) {
    node.services.pubsub.subscribe(topic)
    return {}
  },
  async topicPeers ({ topic }) {
    return {
      peers: node.services.pubsub.getSubscribers(topic).map((p) => p.toString()),
      mesh: node.services.pubsub.getMeshPeers(topic)
    }
  },
  async dhtPeers () {
    return { peers: [...node.services.dht.routingTable.kb.toIterable()].map((c) => c.peerId.toString()) }
  },
  async findPeer ({ peer }) {
    // useCache false: ask the network (FIND_NODE on the DHT protocol), not our peer store.
    const responses = []
    let found = null
    for await (const event of node.services.dht.findPeer(peerIdFromString(peer), {
      useCache: false,
      signal: AbortSignal.timeout(TIMEOUT)
    })) {
      if (event.name === 'PEER_RESPONSE') {
        responses.push({ from: event.from.toString(), closer: event.closer.map(peerInfo) })
      } else if (event.name === 'FINAL_PEER' && found == null) {
        found = { from: event.from.toString(), ...peerInfo(event.peer) }
      }
    }
    return { found, responses }
  },
  async send ({ peer, protocol, frame }) {
    const stream = await node.dialProtocol(peerIdFromString(peer), protocol, {
      signal: AbortSignal.timeout(TIMEOUT)
    })
    await stream.sink([Buffer.from(frame, 'base64')]) // one write, then close our side (as Go)
    await stream.close({ signal: AbortSignal.timeout(TIMEOUT) })
    return {}
  },
  async stop () {
    await node.stop()
    setImmediate(() => process.exit(0))
    return {}
  }
}

emit({ event: 'ready', id: node.peerId.toString(), addrs: node.getMultiaddrs().map((a) => a.toString()) })

const lines = createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    emit({ ok: false, error: `bad command: ${err}` })
    return
  }
  try {
    const fn = ops[cmd.op]
    if (fn == null) throw new Error(`unknown op ${cmd.op}`)
    emit({ id: cmd.id, ok: true, ...(await fn(cmd)) })
  } catch (err) {
    emit({ id: cmd.id, ok: false, error: `${err.name ?? 'Error'}: ${err.message ?? err}` })
  }
})
lines.on('close', async () => {
  await node.stop()
  process.exit(0)
})
