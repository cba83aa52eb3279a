// Every operation the app sends, in one place. graphql-codegen reads this file and
// writes the typed documents to src/gql/ (`npm run codegen`).
import { graphql } from "./gql";

const AuthFields = graphql(`
  fragment AuthFields on AuthPayload {
    accessToken
    refreshToken
    expiresIn
    user { id email fullName emailVerified hasPassword }
  }
`);
export { AuthFields };

export const Register = graphql(`
  mutation Register($input: RegisterInput!) { register(input: $input) { ...AuthFields } }
`);
export const Login = graphql(`
  mutation Login($input: LoginInput!) { login(input: $input) { ...AuthFields } }
`);
export const VerifyMfa = graphql(`
  mutation VerifyMfa($input: VerifyMfaInput!) { verifyMfa(input: $input) { ...AuthFields } }
`);
export const Refresh = graphql(`
  mutation Refresh { refreshToken { accessToken refreshToken } }
`);
export const Logout = graphql(`
  mutation Logout { logout }
`);
export const VerifyEmail = graphql(`
  mutation VerifyEmail($token: String!) { verifyEmail(token: $token) }
`);
export const ResendVerification = graphql(`
  mutation ResendVerification($email: String!) { resendVerificationEmail(email: $email) }
`);
export const RequestPasswordReset = graphql(`
  mutation RequestPasswordReset($email: String!) { requestPasswordReset(email: $email) }
`);
export const ResetPassword = graphql(`
  mutation ResetPassword($input: ResetPasswordInput!) { resetPassword(input: $input) }
`);
export const ChangePassword = graphql(`
  mutation ChangePassword($input: ChangePasswordInput!) { changePassword(input: $input) { ...AuthFields } }
`);
export const Me = graphql(`
  query Me {
    me { id email fullName emailVerified hasPassword dateJoined }
    mfaStatus { totpEnabled passkeyCount recoveryCodesRemaining }
  }
`);
export const MySessions = graphql(`
  query MySessions {
    mySessions { id current createdAt lastUsedAt browser os ipAddress aal authMethods }
  }
`);
export const RevokeSession = graphql(`
  mutation RevokeSession($id: ID!) { revokeSession(id: $id) }
`);
export const BeginTotp = graphql(`
  mutation BeginTotp { beginTotpEnrollment { enrollmentId qrCodeSvg secret expiresAt } }
`);
export const ConfirmTotp = graphql(`
  mutation ConfirmTotp($id: ID!, $code: String!) {
    confirmTotpEnrollment(enrollmentId: $id, code: $code) { recoveryCodes auth { ...AuthFields } }
  }
`);
export const MyPasskeys = graphql(`
  query MyPasskeys { myPasskeys { id name createdAt lastUsedAt } }
`);
export const BeginPasskeyRegistration = graphql(`
  mutation BeginPasskeyRegistration { beginPasskeyRegistration { ceremonyId options } }
`);
export const FinishPasskeyRegistration = graphql(`
  mutation FinishPasskeyRegistration($id: ID!, $credential: JSON!, $name: String) {
    finishPasskeyRegistration(ceremonyId: $id, credential: $credential, name: $name) { id name }
  }
`);
export const BeginPasskeyLogin = graphql(`
  mutation BeginPasskeyLogin { beginPasskeyLogin { ceremonyId options } }
`);
export const FinishPasskeyLogin = graphql(`
  mutation FinishPasskeyLogin($input: PasskeyAssertionInput!) {
    finishPasskeyLogin(input: $input) { ...AuthFields }
  }
`);
export const SocialProviders = graphql(`
  query SocialProviders { socialProviders { id name } }
`);
export const StartSocialLogin = graphql(`
  mutation StartSocialLogin($input: StartSocialLoginInput!) {
    startSocialLogin(input: $input) { authorizationUrl }
  }
`);
export const CompleteSocialLogin = graphql(`
  mutation CompleteSocialLogin($code: String!, $verifier: String!) {
    completeSocialLogin(code: $code, codeVerifier: $verifier) {
      __typename
      ... on AuthPayload { ...AuthFields }
      ... on AccountLinkRequired { linkToken provider email }
    }
  }
`);
