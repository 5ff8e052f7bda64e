/** The host's view of one user's plan: the `USERS_DIR` entry the agents read (docs/CONTRACTS.md). */
import type { UsersIndexEntry } from "../hostContract";
import type { UserPlan } from "../plan";

/** The `USERS_DIR` entry of a user, as one JSON line (key order fixed). */
export function usersEntry(u: UserPlan): string {
  const e: UsersIndexEntry = {
    name: u.name,
    uid: u.uid,
    home: u.home,
    state: u.state,
    email: u.email,
    tmuxPersist: u.grants.tmuxPersist,
    claudeTokenRenew: u.grants.claudeTokenRenew,
    claudeLogin: u.grants.claudeLogin,
  };
  return JSON.stringify(e);
}
