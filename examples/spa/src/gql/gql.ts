/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  fragment AuthFields on AuthPayload {\n    accessToken\n    refreshToken\n    expiresIn\n    user { id email fullName emailVerified hasPassword }\n  }\n": typeof types.AuthFieldsFragmentDoc,
    "\n  mutation Register($input: RegisterInput!) { register(input: $input) { ...AuthFields } }\n": typeof types.RegisterDocument,
    "\n  mutation Login($input: LoginInput!) { login(input: $input) { ...AuthFields } }\n": typeof types.LoginDocument,
    "\n  mutation VerifyMfa($input: VerifyMfaInput!) { verifyMfa(input: $input) { ...AuthFields } }\n": typeof types.VerifyMfaDocument,
    "\n  mutation Refresh { refreshToken { accessToken refreshToken } }\n": typeof types.RefreshDocument,
    "\n  mutation Logout { logout }\n": typeof types.LogoutDocument,
    "\n  mutation VerifyEmail($token: String!) { verifyEmail(token: $token) }\n": typeof types.VerifyEmailDocument,
    "\n  mutation ResendVerification($email: String!) { resendVerificationEmail(email: $email) }\n": typeof types.ResendVerificationDocument,
    "\n  mutation RequestPasswordReset($email: String!) { requestPasswordReset(email: $email) }\n": typeof types.RequestPasswordResetDocument,
    "\n  mutation ResetPassword($input: ResetPasswordInput!) { resetPassword(input: $input) }\n": typeof types.ResetPasswordDocument,
    "\n  mutation ChangePassword($input: ChangePasswordInput!) { changePassword(input: $input) { ...AuthFields } }\n": typeof types.ChangePasswordDocument,
    "\n  query Me {\n    me { id email fullName emailVerified hasPassword dateJoined }\n    mfaStatus { totpEnabled passkeyCount recoveryCodesRemaining }\n  }\n": typeof types.MeDocument,
    "\n  query MySessions {\n    mySessions { id current createdAt lastUsedAt browser os ipAddress aal authMethods }\n  }\n": typeof types.MySessionsDocument,
    "\n  mutation RevokeSession($id: ID!) { revokeSession(id: $id) }\n": typeof types.RevokeSessionDocument,
    "\n  mutation BeginTotp { beginTotpEnrollment { enrollmentId qrCodeSvg secret expiresAt } }\n": typeof types.BeginTotpDocument,
    "\n  mutation ConfirmTotp($id: ID!, $code: String!) {\n    confirmTotpEnrollment(enrollmentId: $id, code: $code) { recoveryCodes auth { ...AuthFields } }\n  }\n": typeof types.ConfirmTotpDocument,
    "\n  query MyPasskeys { myPasskeys { id name createdAt lastUsedAt } }\n": typeof types.MyPasskeysDocument,
    "\n  mutation BeginPasskeyRegistration { beginPasskeyRegistration { ceremonyId options } }\n": typeof types.BeginPasskeyRegistrationDocument,
    "\n  mutation FinishPasskeyRegistration($id: ID!, $credential: JSON!, $name: String) {\n    finishPasskeyRegistration(ceremonyId: $id, credential: $credential, name: $name) { id name }\n  }\n": typeof types.FinishPasskeyRegistrationDocument,
    "\n  mutation BeginPasskeyLogin { beginPasskeyLogin { ceremonyId options } }\n": typeof types.BeginPasskeyLoginDocument,
    "\n  mutation FinishPasskeyLogin($input: PasskeyAssertionInput!) {\n    finishPasskeyLogin(input: $input) { ...AuthFields }\n  }\n": typeof types.FinishPasskeyLoginDocument,
    "\n  query SocialProviders { socialProviders { id name } }\n": typeof types.SocialProvidersDocument,
    "\n  mutation StartSocialLogin($input: StartSocialLoginInput!) {\n    startSocialLogin(input: $input) { authorizationUrl }\n  }\n": typeof types.StartSocialLoginDocument,
    "\n  mutation CompleteSocialLogin($code: String!, $verifier: String!) {\n    completeSocialLogin(code: $code, codeVerifier: $verifier) {\n      __typename\n      ... on AuthPayload { ...AuthFields }\n      ... on AccountLinkRequired { linkToken provider email }\n    }\n  }\n": typeof types.CompleteSocialLoginDocument,
};
const documents: Documents = {
    "\n  fragment AuthFields on AuthPayload {\n    accessToken\n    refreshToken\n    expiresIn\n    user { id email fullName emailVerified hasPassword }\n  }\n": types.AuthFieldsFragmentDoc,
    "\n  mutation Register($input: RegisterInput!) { register(input: $input) { ...AuthFields } }\n": types.RegisterDocument,
    "\n  mutation Login($input: LoginInput!) { login(input: $input) { ...AuthFields } }\n": types.LoginDocument,
    "\n  mutation VerifyMfa($input: VerifyMfaInput!) { verifyMfa(input: $input) { ...AuthFields } }\n": types.VerifyMfaDocument,
    "\n  mutation Refresh { refreshToken { accessToken refreshToken } }\n": types.RefreshDocument,
    "\n  mutation Logout { logout }\n": types.LogoutDocument,
    "\n  mutation VerifyEmail($token: String!) { verifyEmail(token: $token) }\n": types.VerifyEmailDocument,
    "\n  mutation ResendVerification($email: String!) { resendVerificationEmail(email: $email) }\n": types.ResendVerificationDocument,
    "\n  mutation RequestPasswordReset($email: String!) { requestPasswordReset(email: $email) }\n": types.RequestPasswordResetDocument,
    "\n  mutation ResetPassword($input: ResetPasswordInput!) { resetPassword(input: $input) }\n": types.ResetPasswordDocument,
    "\n  mutation ChangePassword($input: ChangePasswordInput!) { changePassword(input: $input) { ...AuthFields } }\n": types.ChangePasswordDocument,
    "\n  query Me {\n    me { id email fullName emailVerified hasPassword dateJoined }\n    mfaStatus { totpEnabled passkeyCount recoveryCodesRemaining }\n  }\n": types.MeDocument,
    "\n  query MySessions {\n    mySessions { id current createdAt lastUsedAt browser os ipAddress aal authMethods }\n  }\n": types.MySessionsDocument,
    "\n  mutation RevokeSession($id: ID!) { revokeSession(id: $id) }\n": types.RevokeSessionDocument,
    "\n  mutation BeginTotp { beginTotpEnrollment { enrollmentId qrCodeSvg secret expiresAt } }\n": types.BeginTotpDocument,
    "\n  mutation ConfirmTotp($id: ID!, $code: String!) {\n    confirmTotpEnrollment(enrollmentId: $id, code: $code) { recoveryCodes auth { ...AuthFields } }\n  }\n": types.ConfirmTotpDocument,
    "\n  query MyPasskeys { myPasskeys { id name createdAt lastUsedAt } }\n": types.MyPasskeysDocument,
    "\n  mutation BeginPasskeyRegistration { beginPasskeyRegistration { ceremonyId options } }\n": types.BeginPasskeyRegistrationDocument,
    "\n  mutation FinishPasskeyRegistration($id: ID!, $credential: JSON!, $name: String) {\n    finishPasskeyRegistration(ceremonyId: $id, credential: $credential, name: $name) { id name }\n  }\n": types.FinishPasskeyRegistrationDocument,
    "\n  mutation BeginPasskeyLogin { beginPasskeyLogin { ceremonyId options } }\n": types.BeginPasskeyLoginDocument,
    "\n  mutation FinishPasskeyLogin($input: PasskeyAssertionInput!) {\n    finishPasskeyLogin(input: $input) { ...AuthFields }\n  }\n": types.FinishPasskeyLoginDocument,
    "\n  query SocialProviders { socialProviders { id name } }\n": types.SocialProvidersDocument,
    "\n  mutation StartSocialLogin($input: StartSocialLoginInput!) {\n    startSocialLogin(input: $input) { authorizationUrl }\n  }\n": types.StartSocialLoginDocument,
    "\n  mutation CompleteSocialLogin($code: String!, $verifier: String!) {\n    completeSocialLogin(code: $code, codeVerifier: $verifier) {\n      __typename\n      ... on AuthPayload { ...AuthFields }\n      ... on AccountLinkRequired { linkToken provider email }\n    }\n  }\n": types.CompleteSocialLoginDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment AuthFields on AuthPayload {\n    accessToken\n    refreshToken\n    expiresIn\n    user { id email fullName emailVerified hasPassword }\n  }\n"): (typeof documents)["\n  fragment AuthFields on AuthPayload {\n    accessToken\n    refreshToken\n    expiresIn\n    user { id email fullName emailVerified hasPassword }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Register($input: RegisterInput!) { register(input: $input) { ...AuthFields } }\n"): (typeof documents)["\n  mutation Register($input: RegisterInput!) { register(input: $input) { ...AuthFields } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Login($input: LoginInput!) { login(input: $input) { ...AuthFields } }\n"): (typeof documents)["\n  mutation Login($input: LoginInput!) { login(input: $input) { ...AuthFields } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation VerifyMfa($input: VerifyMfaInput!) { verifyMfa(input: $input) { ...AuthFields } }\n"): (typeof documents)["\n  mutation VerifyMfa($input: VerifyMfaInput!) { verifyMfa(input: $input) { ...AuthFields } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Refresh { refreshToken { accessToken refreshToken } }\n"): (typeof documents)["\n  mutation Refresh { refreshToken { accessToken refreshToken } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Logout { logout }\n"): (typeof documents)["\n  mutation Logout { logout }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation VerifyEmail($token: String!) { verifyEmail(token: $token) }\n"): (typeof documents)["\n  mutation VerifyEmail($token: String!) { verifyEmail(token: $token) }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ResendVerification($email: String!) { resendVerificationEmail(email: $email) }\n"): (typeof documents)["\n  mutation ResendVerification($email: String!) { resendVerificationEmail(email: $email) }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RequestPasswordReset($email: String!) { requestPasswordReset(email: $email) }\n"): (typeof documents)["\n  mutation RequestPasswordReset($email: String!) { requestPasswordReset(email: $email) }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ResetPassword($input: ResetPasswordInput!) { resetPassword(input: $input) }\n"): (typeof documents)["\n  mutation ResetPassword($input: ResetPasswordInput!) { resetPassword(input: $input) }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ChangePassword($input: ChangePasswordInput!) { changePassword(input: $input) { ...AuthFields } }\n"): (typeof documents)["\n  mutation ChangePassword($input: ChangePasswordInput!) { changePassword(input: $input) { ...AuthFields } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Me {\n    me { id email fullName emailVerified hasPassword dateJoined }\n    mfaStatus { totpEnabled passkeyCount recoveryCodesRemaining }\n  }\n"): (typeof documents)["\n  query Me {\n    me { id email fullName emailVerified hasPassword dateJoined }\n    mfaStatus { totpEnabled passkeyCount recoveryCodesRemaining }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query MySessions {\n    mySessions { id current createdAt lastUsedAt browser os ipAddress aal authMethods }\n  }\n"): (typeof documents)["\n  query MySessions {\n    mySessions { id current createdAt lastUsedAt browser os ipAddress aal authMethods }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RevokeSession($id: ID!) { revokeSession(id: $id) }\n"): (typeof documents)["\n  mutation RevokeSession($id: ID!) { revokeSession(id: $id) }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation BeginTotp { beginTotpEnrollment { enrollmentId qrCodeSvg secret expiresAt } }\n"): (typeof documents)["\n  mutation BeginTotp { beginTotpEnrollment { enrollmentId qrCodeSvg secret expiresAt } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ConfirmTotp($id: ID!, $code: String!) {\n    confirmTotpEnrollment(enrollmentId: $id, code: $code) { recoveryCodes auth { ...AuthFields } }\n  }\n"): (typeof documents)["\n  mutation ConfirmTotp($id: ID!, $code: String!) {\n    confirmTotpEnrollment(enrollmentId: $id, code: $code) { recoveryCodes auth { ...AuthFields } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query MyPasskeys { myPasskeys { id name createdAt lastUsedAt } }\n"): (typeof documents)["\n  query MyPasskeys { myPasskeys { id name createdAt lastUsedAt } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation BeginPasskeyRegistration { beginPasskeyRegistration { ceremonyId options } }\n"): (typeof documents)["\n  mutation BeginPasskeyRegistration { beginPasskeyRegistration { ceremonyId options } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation FinishPasskeyRegistration($id: ID!, $credential: JSON!, $name: String) {\n    finishPasskeyRegistration(ceremonyId: $id, credential: $credential, name: $name) { id name }\n  }\n"): (typeof documents)["\n  mutation FinishPasskeyRegistration($id: ID!, $credential: JSON!, $name: String) {\n    finishPasskeyRegistration(ceremonyId: $id, credential: $credential, name: $name) { id name }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation BeginPasskeyLogin { beginPasskeyLogin { ceremonyId options } }\n"): (typeof documents)["\n  mutation BeginPasskeyLogin { beginPasskeyLogin { ceremonyId options } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation FinishPasskeyLogin($input: PasskeyAssertionInput!) {\n    finishPasskeyLogin(input: $input) { ...AuthFields }\n  }\n"): (typeof documents)["\n  mutation FinishPasskeyLogin($input: PasskeyAssertionInput!) {\n    finishPasskeyLogin(input: $input) { ...AuthFields }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query SocialProviders { socialProviders { id name } }\n"): (typeof documents)["\n  query SocialProviders { socialProviders { id name } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation StartSocialLogin($input: StartSocialLoginInput!) {\n    startSocialLogin(input: $input) { authorizationUrl }\n  }\n"): (typeof documents)["\n  mutation StartSocialLogin($input: StartSocialLoginInput!) {\n    startSocialLogin(input: $input) { authorizationUrl }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CompleteSocialLogin($code: String!, $verifier: String!) {\n    completeSocialLogin(code: $code, codeVerifier: $verifier) {\n      __typename\n      ... on AuthPayload { ...AuthFields }\n      ... on AccountLinkRequired { linkToken provider email }\n    }\n  }\n"): (typeof documents)["\n  mutation CompleteSocialLogin($code: String!, $verifier: String!) {\n    completeSocialLogin(code: $code, codeVerifier: $verifier) {\n      __typename\n      ... on AuthPayload { ...AuthFields }\n      ... on AccountLinkRequired { linkToken provider email }\n    }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;