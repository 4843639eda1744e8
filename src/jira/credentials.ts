// How the app authenticates its calls to a Jira site. Callers see only this interface, so Forge
// Remote app tokens or OAuth 2.0 client credentials can be added as other implementations without
// touching them (product.md, "Platform note").
import { signRequestToken } from './jwt.ts';

export interface JiraCredentials {
  /** Headers that authenticate one request; `pathAndQuery` is relative to the site's base URL. */
  headersFor(method: string, pathAndQuery: string): Promise<Record<string, string>>;
}

/** Atlassian Connect: a fresh HS256 token per request, bound to it by its qsh. */
export class ConnectJwtCredentials implements JiraCredentials {
  constructor(
    private readonly appKey: string,
    private readonly sharedSecret: string,
  ) {}

  async headersFor(method: string, pathAndQuery: string): Promise<Record<string, string>> {
    const token = await signRequestToken({ appKey: this.appKey, sharedSecret: this.sharedSecret, method, pathAndQuery });
    return { authorization: `JWT ${token}` };
  }
}
