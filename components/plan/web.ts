/**
 * Web access, planned (issue 22): who the web surfaces let in, decided once from the users'
 * grants, and the identity files they read, as pure functions of that plan. Formats as the
 * team's readers expect them (../shared/notes/team-devvm.md, "Identity files"; README "Web
 * access"):
 *
 *   /etc/ttyd-user-map          `<sso>=<os_user>` per line, `#` comments
 *   /etc/ttyd-admins            one os user per line
 *   /etc/sudoers.d/ttyd-users   per target user: the terminal's account may run, as that user
 *                               only, the fixed programs (absolute paths; never `(ALL)`)
 *   /etc/t3-serve/dispatch.json `{"<sso>":{"os_user":"<u>","port":N}}`, compact
 *   /etc/t3-serve/<u>.env       `T3_PORT=N`
 *
 * The plan decides WHO is in each file (active users only: a suspended user's grants hold no
 * web access, so one `up` takes them out of every file). WHICH port a T3 user gets is the
 * host's to say: ports are sticky, read back from the host and recorded in its ledger
 * (components/scripts/web.ts); `dispatchJson` and `t3EnvFile` format what it assigned.
 */
import type { UserPlan } from "../plan";
import { TERMINAL_ACCOUNT, TERMINAL_USER_PROGRAMS } from "../hostContract";

/** What an active user gets on the web surfaces (`Grants.web`); suspended users get null. */
export interface WebGrant {
  /** The SSO identity the proxy sends (`X-authentik-username`), mapped to this account. */
  sso: string;
  /** Listed in /etc/ttyd-admins: may view others' sessions read-only ("act-as"). */
  actAs: boolean;
  /** A T3 Code server, `t3-serve@<user>.service`, on a sticky port. */
  t3: boolean;
}

/** One mapped identity. */
export interface WebIdentity {
  sso: string;
  user: string;
}

/** Who the web surfaces let in: read from the users' `grants.web`, nowhere else. */
export interface WebPlan {
  /** Active users with a web terminal, sorted by SSO identity: the user map and the sudoers grants. */
  terminal: WebIdentity[];
  /** Active admins (os users), sorted: /etc/ttyd-admins. */
  admins: string[];
  /** Active users with T3 on, sorted by SSO identity: a port each, dispatch.json and an env file. */
  t3: WebIdentity[];
  /** The dashboard's token injector, sorted by SSO identity: whose token each identity gets. */
  dashboard: InjectorEntry[];
}

/**
 * One identity of the dashboard's token injector map: an active namespace-owner gets the token
 * of their dashboard ServiceAccount in their first namespace, an active cluster-admin the
 * admin token the program manages; nobody else is in the map (no token, no dashboard).
 */
export interface InjectorEntry {
  sso: string;
  user: string;
  token: { kind: "namespace"; namespace: string } | { kind: "admin" };
}

const bySso = (a: WebIdentity, b: WebIdentity) => (a.sso < b.sso ? -1 : a.sso > b.sso ? 1 : 0);

/** Whose token the injector gives a user with these grants (an active one only): see InjectorEntry. */
export function injectorToken(g: Pick<UserPlan["grants"], "web" | "kube">): InjectorEntry["token"] | undefined {
  if (!g.web || !g.kube) return undefined;
  if (g.kube.clusterAdmin) return { kind: "admin" };
  if (g.kube.namespaceAdmin.length) return { kind: "namespace", namespace: g.kube.namespaceAdmin[0] };
  return undefined;
}

/** The web plan of the planned users (active and suspended; only grants count). */
export function planWeb(users: readonly Pick<UserPlan, "name" | "grants">[]): WebPlan {
  const granted = users.flatMap((u) => (u.grants.web ? [{ user: u.name, web: u.grants.web, kube: u.grants.kube }] : []));
  const dashboard = granted.flatMap(({ user, web, kube }): InjectorEntry[] => {
    const token = injectorToken({ web, kube });
    return token ? [{ sso: web.sso, user, token }] : [];
  });
  return {
    terminal: granted.map(({ user, web }) => ({ sso: web.sso, user })).sort(bySso),
    admins: granted
      .filter(({ web }) => web.actAs)
      .map(({ user }) => user)
      .sort(),
    t3: granted
      .filter(({ web }) => web.t3)
      .map(({ user, web }) => ({ sso: web.sso, user }))
      .sort(bySso),
    dashboard: dashboard.sort(bySso),
  };
}

const HEADER = "# managed by workstations from the roster: regenerated whole by every up; a hand edit is put back";

/** /etc/ttyd-user-map (0644). */
export function userMapFile(web: WebPlan): string {
  return [`${HEADER}`, "# <sso-identity>=<os_user>", ...web.terminal.map((i) => `${i.sso}=${i.user}`)].join("\n") + "\n";
}

/** /etc/ttyd-admins (0644): one os user per line, nothing else (its readers take every line as a user). */
export function adminsFile(web: WebPlan): string {
  return web.admins.map((u) => u + "\n").join("");
}

/**
 * /etc/sudoers.d/ttyd-users (0440): per mapped user, one rule naming that user alone as the
 * target, with the fixed absolute programs. No rule for anyone else, none as root, never (ALL).
 */
export function sudoersFile(web: WebPlan, account: string = TERMINAL_ACCOUNT, programs: readonly string[] = TERMINAL_USER_PROGRAMS): string {
  return (
    [
      HEADER,
      `# The web terminal's account ${account} may run, as each active user and only as them: ${programs.join(", ")}.`,
      ...web.terminal
        .map((i) => i.user)
        .sort()
        .map((u) => `${account} ALL=(${u}) NOPASSWD: ${programs.join(", ")}`),
    ].join("\n") + "\n"
  );
}

/** The grants `sudo -l -U <account>` lists for this plan: `(<user>) NOPASSWD: <programs>` per user. */
export function sudoGrants(web: WebPlan, programs: readonly string[] = TERMINAL_USER_PROGRAMS): string[] {
  return web.terminal.map((i) => `(${i.user}) NOPASSWD: ${programs.join(", ")}`).sort();
}

/**
 * /etc/t3-serve/dispatch.json (0644, compact), from the host's ports: keys in the plan's order
 * (written as text: a JS object would put integer-like keys such as "42" first).
 */
export function dispatchJson(web: WebPlan, ports: Readonly<Record<string, number>>): string {
  const entries = web.t3.map((i) => {
    const port = ports[i.user];
    if (!Number.isInteger(port)) throw new Error(`dispatchJson: no port for ${i.user}`);
    return `${JSON.stringify(i.sso)}:${JSON.stringify({ os_user: i.user, port })}`;
  });
  return `{${entries.join(",")}}\n`;
}

/** /etc/t3-serve/<user>.env (0600). */
export const t3EnvFile = (port: number): string => `T3_PORT=${port}\n`;

// ---- the dashboard's token injector (README "Web access") ----

/** The nginx variable the injector's map sets: the `Authorization` value, or "" (no token). */
export const INJECTOR_VARIABLE = "$workstations_dashboard_authorization";
/** Where the injector's nginx finds the map: the Secret's `map.conf`, mounted here. */
export const INJECTOR_MAP_PATH = "/etc/nginx/workstations-injector/map.conf";

/**
 * The injector's map (the Secret's `map.conf`): each mapped identity to `Bearer <token>` of
 * its ServiceAccount, nothing else (`default ""`). An identity whose token is not known yet
 * (the tokens controller has not filled it) is left out rather than mapped to an empty bearer.
 */
export function injectorMapConf(entries: readonly { sso: string; token: string }[]): string {
  const lines = entries
    .filter((e) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(e.sso) && /^[A-Za-z0-9._~+/=-]+$/.test(e.token))
    .map((e) => `    "${e.sso}" "Bearer ${e.token}";`);
  return [
    `${HEADER} (secret: it holds tokens)`,
    "# <sso-identity> -> the Authorization header of its dashboard ServiceAccount; nothing for anyone else",
    `map $http_x_authentik_username ${INJECTOR_VARIABLE} {`,
    '    default "";',
    ...lines,
    "}",
    "",
  ].join("\n");
}

/**
 * The injector's server block (the ConfigMap's `injector.conf`, in nginx's http context): it
 * reads the map, refuses an identity without a token, and replaces any `Authorization` the
 * client sent with the mapped one. Behind the forward-auth proxy, which sets
 * X-authentik-username itself (and only that proxy can reach this server).
 */
export function injectorServerConf(o: { upstream: string; listen?: string; mapPath?: string; caFile?: string }): string {
  const tls = o.caFile ? `\n        proxy_ssl_trusted_certificate ${o.caFile};\n        proxy_ssl_verify on;` : "";
  return `${HEADER}
# The dashboard's token injector: X-authentik-username (set by the forward-auth proxy) -> the
# Authorization header of that user's dashboard ServiceAccount (the map), or 403.
include ${o.mapPath ?? INJECTOR_MAP_PATH};

server {
    listen ${o.listen ?? "8080"};
    location / {
        if (${INJECTOR_VARIABLE} = "") {
            return 403;
        }
        proxy_set_header Authorization ${INJECTOR_VARIABLE};
        proxy_set_header X-authentik-username "";
        proxy_pass ${o.upstream};${tls}
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
    }
}
`;
}
