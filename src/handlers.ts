// operationId -> handler, grouped by the document's tags (Jeon's interfaces): v1 operations carry Jeon's
// method names, v2 the Matrix specification's operationIds. The type makes a missing handler a compile error; api.ts checks again at start-up.
import type { Deps } from './deps.js';
import type { Handler, OperationId } from './platform/http/types.js';
import { handleGetPubKey, handleIsPubKeyValid } from './keys/handlers.js';
import { handleIsEphemeralPubKeyValid, handleSignEd25519, handleStoreInvite } from './invitations/handlers.js';
import { handleGetStatus, handleGetVersions } from './platform/http/status.js';
import { handleAgreeToTerms, handleGetAccount, handleGetTerms, handleLogout, handleRegisterAccount } from './accounts/handlers.js';
import {
  handleBind,
  handleBulkLookupV1,
  handleGetHashDetails,
  handleLookupV1,
  handleLookupV2,
  handleUnbind,
} from './associations/handlers.js';
import {
  handleEmailRequestToken,
  handleEmailSubmitTokenGet,
  handleEmailSubmitTokenPost,
  handleGetValidated3pid,
  handleMsisdnUnsupported,
} from './validation/handlers.js';

export type HandlerTable = { [Op in OperationId]: Handler<Op, Deps> };

export const handlers: HandlerTable = {
  // StatusApi
  getVersions: handleGetVersions,
  pingV2: handleGetStatus,
  v1Status: handleGetStatus,
  // InvitationApi
  storeInviteV2: handleStoreInvite,
  invite: handleStoreInvite,
  // KeyManagementApi
  getPubKeyV2: handleGetPubKey,
  get: handleGetPubKey,
  isPubKeyValidV2: handleIsPubKeyValid,
  valid: handleIsPubKeyValid,
  isEphemeralPubKeyValidV2: handleIsEphemeralPubKeyValid,
  ephemeralValid: handleIsEphemeralPubKeyValid,
  // AuthenticationApi
  registerAccount: handleRegisterAccount,
  getAccount: handleGetAccount,
  logout: handleLogout,
  // TermsApi
  getTerms: handleGetTerms,
  agreeToTerms: handleAgreeToTerms,
  // SessionApi
  emailRequestTokenV2: handleEmailRequestToken,
  createEmailSession: handleEmailRequestToken,
  emailSubmitTokenPostV2: handleEmailSubmitTokenPost,
  postValidateEmail: handleEmailSubmitTokenPost,
  emailSubmitTokenGetV2: handleEmailSubmitTokenGet,
  getValidateEmail: handleEmailSubmitTokenGet,
  msisdnRequestTokenV2: handleMsisdnUnsupported,
  createPhoneSession: handleMsisdnUnsupported,
  msisdnSubmitTokenPostV2: handleMsisdnUnsupported,
  postValidatePhone: handleMsisdnUnsupported,
  msisdnSubmitTokenGetV2: handleMsisdnUnsupported,
  getValidatePhone: handleMsisdnUnsupported,
  // ValidationApi
  getValidated3pidV2: handleGetValidated3pid,
  validate: handleGetValidated3pid,
  bindV2: handleBind,
  bind: handleBind,
  unbindV2: handleUnbind,
  unbind: handleUnbind,
  // LookupApi
  getHashDetails: handleGetHashDetails,
  lookupUsersV2: handleLookupV2,
  lookup: handleLookupV1,
  bulkLookup: handleBulkLookupV1,
  // SigningApi
  blindlySignStuffV2: handleSignEd25519,
  sign: handleSignEd25519,
};
