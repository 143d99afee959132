// The API key lives in the keychain (this device only: never in a backup or on another device), not in
// UserDefaults; every Security status goes through DuetKit's KeychainStatus, which says what it means.

import DuetKit
import Foundation
import Security

enum KeychainStore {
    static let service = "org.duet.demo"

    private static func query(_ account: String) -> [String: Any] {
        [kSecClass as String: kSecClassGenericPassword, kSecAttrService as String: service,
         kSecAttrAccount as String: account]
    }

    /// The stored value, nil when there is none; KeychainStatus.Failure when the keychain refuses.
    static func read(account: String) throws -> String? {
        var request = query(account)
        request[kSecReturnData as String] = true
        request[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        guard try KeychainStatus.found(afterRead: SecItemCopyMatching(request as CFDictionary, &item)),
              let data = item as? Data else { return nil }
        return String(data: data, encoding: .utf8)
    }

    /// Replace the stored value (an empty one removes it); KeychainStatus.Failure when the keychain refuses.
    static func write(_ value: String, account: String) throws {
        try KeychainStatus.checkDelete(SecItemDelete(query(account) as CFDictionary))
        guard !value.isEmpty else { return }
        var item = query(account)
        item[kSecValueData as String] = Data(value.utf8)
        item[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        try KeychainStatus.checkAdd(SecItemAdd(item as CFDictionary, nil))
    }
}
