// A real OpenID provider (oidc-provider, pinned in this directory's lock file) for the OAuth
// tests, run as its own process with Node 22 (which oidc-provider needs):
//   node oidc-server.mjs CONFIG_JSON
// CONFIG: { port, issuer, keys: [private JWK...], resources: { url: "jwt" | "opaque" },
//           tls?: { cert, key }, clients?: [...] }
// Dynamic client registration, PKCE, resource indicators (RFC 8707) and token introspection
// are enabled. Interactions (login, consent) are finished by the test: POST /_test/login with
// {"account": "alice"} chooses who logs in next; consent grants what was asked. Prints
// "listening" once it serves.
import Provider from 'oidc-provider';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';

const config = JSON.parse(process.argv[2]);
let nextAccount = 'alice';

const provider = new Provider(config.issuer, {
  clients: config.clients || [],
  jwks: { keys: config.keys },
  cookies: { keys: ['pg-mcp-test-cookie-key'] },
  scopes: ['openid', 'offline_access', 'mcp:tools', 'mcp:admin'],
  claims: { email: ['email'], groups: ['groups'] },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf || Object.keys(config.resources)[0],
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        const format = config.resources[resource];
        if (!format) throw new Provider.errors.InvalidTarget(`unknown resource ${resource}`);
        return {
          scope: 'mcp:tools mcp:admin',
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: format,
          ...(format === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {})
        };
      }
    }
  },
  findAccount: (ctx, id) => ({
    accountId: id,
    claims: () => ({ sub: id, email: `${id}@example.com` })
  }),
  extraTokenClaims: (ctx, token) => (token.accountId ? { email: `${token.accountId}@example.com` } : undefined),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, Interaction: 600, Session: 600, IdToken: 600 }
});
provider.proxy = false;

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: nextAccount } }, { mergeWithLastSubmission: false });
    return;
  }
  // Consent: what was asked (the test decided by asking for it).
  const { missingOIDCScope = [], missingResourceScopes = {} } = details.prompt.details;
  let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  if (!grant) grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  if (missingOIDCScope.length) grant.addOIDCScope(missingOIDCScope.join(' '));
  for (const [resource, scopes] of Object.entries(missingResourceScopes)) grant.addResourceScope(resource, scopes.join(' '));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
async function handle(req, res) {
  try {
    if (req.method === 'POST' && req.url === '/_test/login') {
      let body = '';
      for await (const chunk of req) body += chunk;
      nextAccount = JSON.parse(body).account;
      res.writeHead(204).end();
      return;
    }
    if (req.url.startsWith('/interaction/')) {
      await interaction(req, res);
      return;
    }
    callback(req, res);
  } catch (error) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error));
  }
}

const server = config.tls
  ? https.createServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, handle)
  : http.createServer(handle);
server.listen(config.port, '127.0.0.1', () => console.log('listening'));
