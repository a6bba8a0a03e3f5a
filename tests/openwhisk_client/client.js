// Drives Nimbus's OpenWhisk API (/api/v1) with the official `openwhisk` npm client.
//
//   OW_APIHOST=http://127.0.0.1:8080 OW_AUTH=uuid:key node client.js
//
// Prints one "ok <step>" line per step; any failure exits non-zero with the reason.
'use strict'

const assert = require('node:assert/strict')
const openwhisk = require('openwhisk')

const ow = openwhisk({ apihost: process.env.OW_APIHOST, api_key: process.env.OW_AUTH })
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const ok = (step) => console.log(`ok ${step}`)

const HELLO = "def main(args):\n    print('hello', args.get('name'))\n    return {'greeting': 'hello ' + args.get('name', 'world')}\n"
const HOWDY = HELLO.replace("'hello ' +", "'howdy ' +")

// An activation once it has ended (the API answers 404 until then, as OpenWhisk).
async function ended (id) {
  for (let i = 0; i < 300; i++) {
    try {
      return await ow.activations.get({ name: id })
    } catch (err) {
      if (err.statusCode !== 404) throw err
      await sleep(100)
    }
  }
  throw new Error(`activation ${id} never ended`)
}

async function actions () {
  const created = await ow.actions.create({ name: 'hello', kind: 'python:3', action: HELLO })
  assert.equal(created.name, 'hello')
  assert.equal(created.version, '0.0.1')
  ok('actions.create')

  await assert.rejects(
    ow.actions.create({ name: 'hello', kind: 'python:3', action: HELLO }),
    (err) => err.statusCode === 409
  )
  ok('actions.create refuses an existing name (409)')

  const updated = await ow.actions.update({ name: 'hello', kind: 'python:3', action: HOWDY })
  assert.equal(updated.version, '0.0.2')
  ok('actions.update')

  const got = await ow.actions.get({ name: 'hello' })
  assert.equal(got.exec.kind, 'python:3')
  assert.equal(got.exec.code, HOWDY)
  ok('actions.get')

  const listed = await ow.actions.list()
  assert.deepEqual(listed.map((a) => a.name), ['hello'])
  ok('actions.list')

  await assert.rejects(
    ow.actions.create({ name: 'js', kind: 'nodejs:20', action: 'function main() {}' }),
    (err) => err.statusCode === 400 && /python:3/.test(err.message)
  )
  ok('actions.create refuses an unknown kind (400)')
}

async function invocations () {
  const record = await ow.actions.invoke({ name: 'hello', blocking: true, params: { name: 'ada' } })
  assert.equal(record.response.success, true)
  assert.deepEqual(record.response.result, { greeting: 'howdy ada' })
  assert.match(record.logs[0], /^\S+Z stdout: hello ada$/)
  ok('actions.invoke blocking')

  const result = await ow.actions.invoke({ name: 'hello', blocking: true, result: true, params: { name: 'bo' } })
  assert.deepEqual(result, { greeting: 'howdy bo' })
  ok('actions.invoke result only')

  const accepted = await ow.actions.invoke({ name: 'hello', params: { name: 'cy' } })
  assert.match(accepted.activationId, /^[0-9a-f]{32}$/)
  ok('actions.invoke non-blocking')
  return accepted.activationId
}

async function activations (id) {
  const record = await ended(id)
  assert.equal(record.activationId, id)
  assert.deepEqual(record.response.result, { greeting: 'howdy cy' })
  ok('activations.get')

  const listed = await ow.activations.list({ name: 'hello', limit: 10 })
  assert.equal(listed.length, 3)
  assert.ok(listed.some((a) => a.activationId === id))
  ok('activations.list')

  const logs = await ow.activations.logs({ name: id })
  assert.match(logs.logs[0], /stdout: hello cy$/)
  ok('activations.logs')

  const response = await ow.activations.result({ name: id })
  assert.equal(response.status, 'success')
  assert.deepEqual(response.result, { greeting: 'howdy cy' })
  ok('activations.result')
}

async function triggersAndRules () {
  await ow.triggers.create({ name: 'events', trigger: { parameters: [{ key: 'name', value: 'trigger' }] } })
  ok('triggers.create')
  const rule = await ow.rules.create({ name: 'wire', trigger: 'events', action: 'hello' })
  assert.equal(rule.status, 'active')
  ok('rules.create')

  const fired = await ow.triggers.invoke({ name: 'events', params: { extra: 1 } })
  const record = await ended(fired.activationId)
  assert.deepEqual(record.response.result, { greeting: 'howdy trigger' })
  ok('triggers.invoke (fire)')

  await ow.rules.disable({ name: 'wire' })
  assert.equal((await ow.rules.get({ name: 'wire' })).status, 'inactive')
  ok('rules.disable')
  await ow.rules.enable({ name: 'wire' })
  assert.equal((await ow.rules.get({ name: 'wire' })).status, 'active')
  ok('rules.enable')

  await ow.rules.delete({ name: 'wire' })
  await ow.triggers.delete({ name: 'events' })
  assert.deepEqual(await ow.triggers.list(), [])
  ok('rules.delete and triggers.delete')
}

const SHOUT = "def main(args):\n    return {'greeting': args['greeting'].upper() + '!'}\n"
const PAGE = [
  'import base64',
  'PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d49484452")).decode()',
  'def main(args):',
  "    kind = args.get('kind', 'html')",
  "    if kind == 'html':",
  "        return {'body': '<h1>hello ' + args.get('name', 'web') + '</h1>'}",
  "    if kind == 'png':",
  "        return {'headers': {'Content-Type': 'image/png'}, 'body': PNG}",
  "    if kind == 'redirect':",
  "        return {'statusCode': 302, 'headers': {'Location': 'https://example.org/'}}",
  "    if kind == 'teapot':",
  "        return {'statusCode': 418, 'body': 'short and stout'}",
  "    return {'name': args.get('name'), 'method': args.get('__ow_method')}",
  ''
].join('\n')

async function sequences () {
  await ow.actions.create({ name: 'greet', kind: 'python:3', action: HELLO })
  await ow.actions.create({ name: 'shout', kind: 'python:3', action: SHOUT })
  const ns = process.env.OW_NAMESPACE
  await ow.actions.create({ name: 'loud', sequence: [`/${ns}/greet`, `/${ns}/shout`] })
  const got = await ow.actions.get({ name: 'loud' })
  assert.equal(got.exec.kind, 'sequence')
  const result = await ow.actions.invoke({ name: 'loud', blocking: true, result: true, params: { name: 'seq' } })
  assert.deepEqual(result, { greeting: 'HELLO SEQ!' })
  ok('sequence create and invoke')
  for (const name of ['loud', 'shout', 'greet']) await ow.actions.delete({ name })
}

// A web action, created with the client and fetched with plain HTTP and no credentials.
async function webActions () {
  await ow.actions.create({
    name: 'page', kind: 'python:3', action: PAGE, annotations: { 'web-export': true }
  })
  const base = `${process.env.OW_APIHOST}/api/v1/web/${process.env.OW_NAMESPACE}/default/page`
  const json = await fetch(`${base}.json?kind=json&name=ada`)
  assert.equal(json.status, 200)
  assert.deepEqual(await json.json(), { name: 'ada', method: 'get' })
  const html = await fetch(`${base}.html?name=bo`)
  assert.equal(html.status, 200)
  assert.match(html.headers.get('content-type'), /text\/html/)
  assert.equal(await html.text(), '<h1>hello bo</h1>')
  const png = await fetch(`${base}.http?kind=png`)
  assert.equal(png.headers.get('content-type'), 'image/png')
  const bytes = Buffer.from(await png.arrayBuffer())
  assert.equal(bytes.subarray(1, 4).toString(), 'PNG')
  const moved = await fetch(`${base}.http?kind=redirect`, { redirect: 'manual' })
  assert.equal(moved.status, 302)
  assert.equal(moved.headers.get('location'), 'https://example.org/')
  const teapot = await fetch(`${base}.http?kind=teapot`)
  assert.equal(teapot.status, 418)
  assert.equal(await teapot.text(), 'short and stout')
  ok('web action fetched with plain HTTP')
  await ow.actions.delete({ name: 'page' })
}

async function main () {
  assert.deepEqual(await ow.namespaces.list(), [process.env.OW_NAMESPACE])
  ok('namespaces.list')
  await actions()
  await activations(await invocations())
  await triggersAndRules()
  await sequences()
  await webActions()
  await ow.actions.delete({ name: 'hello' })
  await assert.rejects(ow.actions.get({ name: 'hello' }), (err) => err.statusCode === 404)
  ok('actions.delete')
}

main().catch((err) => {
  console.error(`FAILED: ${err.stack || err}`)
  if (err.error) console.error(JSON.stringify(err.error))
  process.exit(1)
})
