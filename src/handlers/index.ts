// operationId -> handler. The type makes a missing handler a compile error; api.ts checks again at start-up.
import type { Deps } from '../deps.js';
import type { Handler, OperationId } from '../http/types.js';
import { handleStoreInvite } from './storeInvite.js';
import { handleGetPubKey, handleIsEphemeralPubKeyValid, handleIsPubKeyValid } from './pubkey.js';
import { handleGetStatus, handleGetVersions } from './status.js';
import { handleAgreeToTerms, handleGetAccount, handleGetTerms, handleLogout, handleRegisterAccount } from './accounts.js';
import {
  handleBind, handleBulkLookupV1, handleEmailRequestToken, handleEmailSubmitTokenGet, handleEmailSubmitTokenPost, handleGetHashDetails,
  handleGetValidated3pid, handleLookupV1, handleLookupV2, handleMsisdnUnsupported, handleSignEd25519, handleUnbind,
} from './binding.js';

export type HandlerTable = { [Op in OperationId]: Handler<Op, Deps> };

export const handlers: HandlerTable = {
  getVersions: handleGetVersions,
  getStatus: handleGetStatus,
  getStatusV1: handleGetStatus,
  invite: handleStoreInvite,
  storeInviteV2: handleStoreInvite,
  getPubKey: handleGetPubKey,
  getPubKeyV1: handleGetPubKey,
  isPubKeyValid: handleIsPubKeyValid,
  isPubKeyValidV1: handleIsPubKeyValid,
  isEphemeralPubKeyValid: handleIsEphemeralPubKeyValid,
  isEphemeralPubKeyValidV1: handleIsEphemeralPubKeyValid,
  registerAccount: handleRegisterAccount,
  getAccount: handleGetAccount,
  logout: handleLogout,
  getTerms: handleGetTerms,
  agreeToTerms: handleAgreeToTerms,
  // binding (issue 5)
  emailRequestToken: handleEmailRequestToken,
  emailRequestTokenV1: handleEmailRequestToken,
  emailSubmitTokenPost: handleEmailSubmitTokenPost,
  emailSubmitTokenPostV1: handleEmailSubmitTokenPost,
  emailSubmitTokenGet: handleEmailSubmitTokenGet,
  emailSubmitTokenGetV1: handleEmailSubmitTokenGet,
  msisdnRequestToken: handleMsisdnUnsupported,
  msisdnRequestTokenV1: handleMsisdnUnsupported,
  msisdnSubmitTokenPost: handleMsisdnUnsupported,
  msisdnSubmitTokenPostV1: handleMsisdnUnsupported,
  msisdnSubmitTokenGet: handleMsisdnUnsupported,
  msisdnSubmitTokenGetV1: handleMsisdnUnsupported,
  getValidated3pid: handleGetValidated3pid,
  getValidated3pidV1: handleGetValidated3pid,
  bind: handleBind,
  bindV1: handleBind,
  unbind: handleUnbind,
  unbindV1: handleUnbind,
  getHashDetails: handleGetHashDetails,
  lookupUsersV2: handleLookupV2,
  lookupV1: handleLookupV1,
  bulkLookupV1: handleBulkLookupV1,
  blindlySignStuff: handleSignEd25519,
  blindlySignStuffV1: handleSignEd25519,
};
