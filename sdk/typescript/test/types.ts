// Compiled (not run) by `npm run typecheck`: the declarations describe
// what an agent writes, and a misuse is a type error.
import {
  Client,
  ConsentRequiredError,
  ScopeNotGrantedError,
  ValetKeyError,
  authorizedFetch,
  errorsByCode,
  type Token,
} from '../src/index.js';

async function agent(): Promise<void> {
  const vk = new Client({ agent: 'typed-bot', purpose: 'type check' });
  const tok: Token = await vk.token('github', ['repo:read'], { wait: false, duration: 600 });
  const header: string = tok.authorization;
  const expires: number = tok.expiresAt;
  try {
    await vk.token('github', 'repo:write');
  } catch (e) {
    if (e instanceof ConsentRequiredError) {
      const again: Token = await vk.consentWait(String(e.data.consent_id));
      void again;
    } else if (e instanceof ScopeNotGrantedError || e instanceof ValetKeyError) {
      const code: number = e.code;
      void code;
    }
  }
  const d = await vk.delegate('sub', 'github', ['repo:read'], 300, { maxDepth: 2 });
  const sub = new Client({ agent: 'sub', delegation: d.token });
  const gh = authorizedFetch(sub, 'github', ['repo:read'], { margin: 30 });
  const res: Response = await gh('https://api.github.com/user');
  const k: typeof ValetKeyError | undefined = errorsByCode.get(2000);
  void header, expires, res, k;
  // @ts-expect-error: the agent name is required
  new Client({});
  // @ts-expect-error: scopes are strings
  await vk.token('github', [1]);
  await vk.close();
}
void agent;
