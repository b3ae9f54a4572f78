// META.json against the PGXN Meta Spec 1.0.0 (https://pgxn.org/spec/): the required keys and
// their forms, the license among the spec's names, every provided extension with a file that
// exists and a semantic version; and the version equal to the extension's one version source.
//   node test/meta.mjs
import { readFileSync, existsSync } from 'node:fs';
import assert from 'node:assert/strict';

const root = new URL('..', import.meta.url).pathname;
const meta = JSON.parse(readFileSync(`${root}META.json`, 'utf8'));
const control = readFileSync(`${root}extension/pg_mcp.control`, 'utf8');
const version = /^default_version = '(.*)'/m.exec(control)[1];
const semver = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;
const licenses = ['agpl_3', 'apache_1_1', 'apache_2_0', 'artistic_1', 'artistic_2', 'bsd', 'freebsd',
  'gfdl_1_2', 'gfdl_1_3', 'gpl_1', 'gpl_2', 'gpl_3', 'lgpl_2_1', 'lgpl_3_0', 'mit', 'mozilla_1_0',
  'mozilla_1_1', 'openssl', 'perl_5', 'postgresql', 'qpl_1_0', 'ssleay', 'sun', 'zlib',
  'open_source', 'restricted', 'unrestricted', 'unknown'];

for (const key of ['name', 'version', 'abstract', 'maintainer', 'license', 'provides', 'meta-spec'])
  assert.ok(key in meta, `META.json lacks the required key "${key}"`);
assert.match(meta.name, /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'name');
assert.match(meta.version, semver, 'version is not a semantic version');
assert.equal(meta.version, version, 'META.json version differs from extension/pg_mcp.control');
assert.equal(typeof meta.abstract, 'string');
assert.ok(meta.abstract.length > 0);
assert.ok(typeof meta.maintainer === 'string' || (Array.isArray(meta.maintainer) && meta.maintainer.length > 0));
for (const license of [].concat(meta.license)) assert.ok(licenses.includes(license), `unknown license ${license}`);
assert.equal(meta['meta-spec'].version, '1.0.0');
assert.ok(Object.keys(meta.provides).length > 0, 'provides is empty');
for (const [name, ext] of Object.entries(meta.provides)) {
  assert.equal(typeof ext.file, 'string', `provides.${name}.file`);
  assert.ok(existsSync(`${root}${ext.file}`), `provides.${name}.file ${ext.file} does not exist`);
  assert.match(ext.version, semver, `provides.${name}.version`);
  assert.equal(ext.version, version, `provides.${name}.version differs from the control file`);
}
if (meta.release_status) assert.ok(['stable', 'testing', 'unstable'].includes(meta.release_status));
if (meta.tags) for (const tag of meta.tags) assert.ok(typeof tag === 'string' && tag.length > 0 && tag.length < 256);
if (meta.prereqs)
  for (const [phase, relations] of Object.entries(meta.prereqs)) {
    assert.ok(['configure', 'build', 'test', 'runtime', 'develop'].includes(phase), `prereqs phase ${phase}`);
    for (const relation of Object.keys(relations))
      assert.ok(['requires', 'recommends', 'suggests', 'conflicts'].includes(relation), `prereqs relation ${relation}`);
  }
console.log(`META.json: valid for PGXN Meta Spec 1.0.0; pg_mcp ${version}`);
